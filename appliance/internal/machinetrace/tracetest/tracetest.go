// Package tracetest records the spans a test's code makes: it starts a
// tracing.Provider (OpenTelemetry's global one) keeping spans in a
// tracing.Store in the test's directory, and reads a trace back from it.
// Tests that use it must not run in parallel with other tests of their
// package that record spans (the provider is global); each reads only
// the trace it made, so spans of other tests never confuse it.
package tracetest

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
)

// Recorder is a test's provider and the store its spans go to.
type Recorder struct {
	p     *tracing.Provider
	store *tracing.Store
}

// Start starts a provider for the test (service "applianced", node
// "n1"), shut down at its end.
func Start(t testing.TB) *Recorder {
	t.Helper()
	t.Setenv(tracing.Off, "")
	st, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tracing.Start(tracing.Config{Service: "applianced", Node: "n1", Store: st, Batch: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Shutdown(context.Background())
		st.Close()
	})
	return &Recorder{p: p, store: st}
}

// Root starts a root span (as the site's order.apply is) and returns
// its traceparent and the function that ends it.
func (r *Recorder) Root(t testing.TB, name string) (tp string, end func()) {
	t.Helper()
	ctx, span := otel.Tracer("github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest").Start(context.Background(), name)
	return tracing.Traceparent(ctx), func() { span.End() }
}

// Spans flushes the provider and returns the spans of tp's trace, by
// start.
func (r *Recorder) Spans(t testing.TB, tp string) []tracing.Span {
	t.Helper()
	if err := r.p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans, err := r.store.Trace(tracing.TraceID(tp))
	if err != nil {
		t.Fatal(err)
	}
	return spans
}

// All flushes the provider and returns every span it kept.
func (r *Recorder) All(t testing.TB) []tracing.Span {
	t.Helper()
	if err := r.p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	spans, _, err := r.store.After(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return spans
}

// Named returns the spans of tp's trace named name.
func (r *Recorder) Named(t testing.TB, tp, name string) []tracing.Span {
	t.Helper()
	var out []tracing.Span
	for _, s := range r.Spans(t, tp) {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// SpanID is the span id of a traceparent: the parent a child of it
// names.
func SpanID(tp string) string {
	return trace.SpanContextFromContext(tracing.WithRemoteParent(context.Background(), tp)).SpanID().String()
}

// Provision is the spans of one provision in trace, from t0: every phase
// of it, the last (the installed OS's metadata request) only if whole.
// Each span but the first is the first's child.
func Provision(trace string, t0 time.Time, whole bool) []tracing.Span {
	n := 0
	at := func(name string, from, to int, attrs ...string) tracing.Span {
		n++
		s := tracing.Span{TraceID: trace, SpanID: fmt.Sprintf("%016x", n), Name: name, Service: "applianced", Node: "n1",
			Start: t0.Add(time.Duration(from) * time.Second), End: t0.Add(time.Duration(to) * time.Second)}
		if len(attrs) == 2 {
			s.Attrs = map[string]string{attrs[0]: attrs[1]}
		}
		if n > 1 {
			s.Parent = fmt.Sprintf("%016x", 1)
		}
		return s
	}
	spans := []tracing.Span{
		at("order.place", 0, 1), at("order.apply", 2, 3), at("bmc.power_cycle", 3, 5),
		at("dhcp.exchange", 20, 21), at("boot.fetch", 22, 30), at("agent.run", 40, 200),
		at("action.wipe", 41, 50, tracing.AttrActionType, "disk.wipe"),
		at("action.image", 50, 150, tracing.AttrActionType, "image.write"),
		at("action.cfg", 150, 160, tracing.AttrActionType, "file.write"),
		at("action.reboot", 160, 161, tracing.AttrActionType, "reboot"),
		at("dhcp.exchange", 190, 191),
	}
	if whole {
		spans = append(spans, at("metadata.get", 200, 201))
	}
	return spans
}
