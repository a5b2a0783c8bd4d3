package lab

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
)

// TestJaegerReceivesOTLP sends real spans (a root, a child with an
// attribute and a progress event, a failed grandchild) by OTLP/HTTP from
// a provider made by tracing.Start, and reads the trace back from the
// Jaeger all-in-one: the same spans, parents, attributes, events and
// error as the provider kept in its own Store.
func TestJaegerReceivesOTLP(t *testing.T) {
	j := StartJaeger(t)
	store, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	p, err := tracing.Start(tracing.Config{
		Service: "jaeger-test", Node: "node1", Store: store,
		OTLPEndpoint: j.OTLPEndpoint, Batch: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(context.Background()) })

	tr := p.Tracer("github.com/outposthq/outpost/appliance/internal/lab")
	ctx, root := tr.Start(t.Context(), tracing.SpanOrderApply,
		trace.WithAttributes(attribute.String(tracing.AttrMachine, "m1")))
	cctx, child := tr.Start(ctx, tracing.SpanActionPrefix+"image", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String(tracing.AttrActionType, "image.write")))
	child.AddEvent("progress", trace.WithAttributes(attribute.Int64(tracing.AttrBytes, 1<<20)))
	_, grandchild := tr.Start(cctx, tracing.SpanBMCPrefix+"power_cycle")
	grandchild.SetStatus(codes.Error, "bmc refused")
	grandchild.End()
	child.End()
	root.End()
	traceID := root.SpanContext().TraceID().String()
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	want, err := store.Trace(traceID)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 3 {
		t.Fatalf("the provider's store holds %d spans of trace %s, want 3", len(want), traceID)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, err := j.WaitTrace(ctx, traceID, func(s []tracing.Span) bool { return len(s) == len(want) })
	if err != nil {
		t.Fatalf("jaeger: %v", err)
	}
	if diff := cmp.Diff(byID(want), byID(got), cmpopts.EquateApproxTime(2*time.Microsecond), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("the trace in jaeger differs from the one the provider kept (-kept +jaeger):\n%s", diff)
	}
	if c := tracing.Check(got); c.Orphans != 0 || c.Spans != 3 {
		t.Errorf("jaeger's trace: %+v, want 3 spans and no orphan", c)
	}
}

// TestJaegerTraceNotFound: a trace Jaeger never got is ErrTraceNotFound,
// which WaitTrace reports when its context ends.
func TestJaegerTraceNotFound(t *testing.T) {
	j := StartJaeger(t)
	const id = "0123456789abcdef0123456789abcdef"
	if _, err := j.Trace(t.Context(), id); !errors.Is(err, ErrTraceNotFound) {
		t.Fatalf("Trace(%s) = %v, want ErrTraceNotFound", id, err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := j.WaitTrace(ctx, id, nil); !errors.Is(err, ErrTraceNotFound) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitTrace(%s) = %v, want ErrTraceNotFound at the deadline", id, err)
	}
}

// byID sorts spans by id. (Jaeger keeps times in microseconds: the
// comparison allows for that.)
func byID(spans []tracing.Span) []tracing.Span {
	out := append([]tracing.Span(nil), spans...)
	sort.Slice(out, func(a, b int) bool { return out[a].SpanID < out[b].SpanID })
	return out
}
