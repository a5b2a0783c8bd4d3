package site

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

// recordSpans makes a provider that keeps every span in memory the
// global one for the test.
func recordSpans(t *testing.T) *tracetest.InMemoryExporter {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })
	return exp
}

// applySpans returns the order.apply spans recorded so far.
func applySpans(exp *tracetest.InMemoryExporter) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == tracing.SpanOrderApply {
			out = append(out, s)
		}
	}
	return out
}

// traceSite is a site with a machine that has a BMC, and a proposer.
func traceSite(t *testing.T) (*env, *Proposer) {
	e := newEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	e.applyOK(2, PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0})
	e.applyOK(3, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0})
	e.putHeldImage(4, fxImage("ubuntu"))
	return e, NewProposer(ProposerConfig{Log: NewLocalLog(e.db, nil), Store: e.db, Now: func() time.Time { return ts0 }})
}

// orderParts reads order id, its workflow's and its jobs' traceparents.
func orderTraceparents(t *testing.T, e *env, id string) (order string, parts []string) {
	t.Helper()
	e.view(func(tx *store.Tx) error {
		o, err := store.Get[store.Order](tx, id)
		if err != nil {
			t.Fatalf("order %s: %v", id, err)
		}
		order = o.Traceparent
		if o.Workflow != "" {
			w, err := store.Get[store.Workflow](tx, o.Workflow)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, w.Traceparent)
		}
		for _, jid := range o.Jobs {
			j, err := store.Get[store.Job](tx, jid)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, j.Traceparent)
		}
		return nil
	})
	return order, parts
}

// TestPlaceOrderSpan: an order placed at the site gets an order.apply
// span, a child of the request's span, covering its proposal to its
// applying; the order, its workflow and its jobs carry that span's
// traceparent.
func TestPlaceOrderSpan(t *testing.T) {
	exp := recordSpans(t)
	e, p := traceSite(t)
	ctx, req := otel.Tracer("test").Start(t.Context(), "POST /v1/orders")
	o := &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Image: "ubuntu", Template: "install"}
	if _, err := p.PlaceOrder(ctx, o); err != nil {
		t.Fatal(err)
	}
	req.End()
	spans := applySpans(exp)
	if len(spans) != 1 {
		t.Fatalf("%d order.apply spans, want 1", len(spans))
	}
	sp := spans[0]
	if sp.Parent.SpanID() != req.SpanContext().SpanID() || sp.SpanContext.TraceID() != req.SpanContext().TraceID() {
		t.Errorf("order.apply's parent is %s, want the request's span %s", sp.Parent.SpanID(), req.SpanContext().SpanID())
	}
	want := tracing.Traceparent(trace.ContextWithSpanContext(context.Background(), sp.SpanContext))
	got, parts := orderTraceparents(t, e, "o1")
	if got != want {
		t.Errorf("order's traceparent %q, want the order.apply span's %q", got, want)
	}
	if len(parts) != 3 {
		t.Fatalf("%d parts (workflow and jobs), want 3", len(parts))
	}
	for i, tp := range parts {
		if tp != want {
			t.Errorf("part %d's traceparent %q, want the order's %q", i, tp, want)
		}
	}
	// The order's events name its trace, for central's fleet model.
	var created store.Event
	e.view(func(tx *store.Tx) error {
		return tx.EventsBefore(0, 0, func(ev *store.Event) bool {
			if ev.Kind == "order.created" && ev.Fields["order"] == "o1" {
				created = *ev
				return false
			}
			return true
		})
	})
	if created.Fields["trace_id"] != sp.SpanContext.TraceID().String() {
		t.Errorf("order.created's fields %v, want trace_id %s", created.Fields, sp.SpanContext.TraceID())
	}
	if sp.Attributes == nil || attr(sp, tracing.AttrOrder) != "o1" || attr(sp, tracing.AttrMachine) != "m1" || attr(sp, tracing.AttrImage) != "ubuntu" {
		t.Errorf("order.apply attributes %v, want its order, machine and image", sp.Attributes)
	}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestPlaceOrderSpanRootAndRefused: without a span in its context an
// order's span is a trace's root; a refused order's span ends failed;
// a bad traceparent is refused naming it.
func TestPlaceOrderSpanRootAndRefused(t *testing.T) {
	exp := recordSpans(t)
	_, p := traceSite(t)
	if _, err := p.PlaceOrder(t.Context(), &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.PlaceOrder(t.Context(), &store.Order{ID: "o2", Action: store.OrderPowerOn, MachineID: "nobody"}); err == nil {
		t.Fatal("an order for a machine the site does not have was placed")
	}
	_, err := p.PlaceOrder(t.Context(), &store.Order{ID: "o3", Action: store.OrderPowerOn, MachineID: "m1", Traceparent: "00-xyz"})
	var e2 *errs.Error
	if !errors.As(err, &e2) || e2.Code != errs.CodeInvalid || e2.Field != "traceparent" {
		t.Errorf("a bad traceparent: %v, want invalid traceparent", err)
	}
	spans := applySpans(exp)
	if len(spans) != 2 {
		t.Fatalf("%d order.apply spans, want 2 (the bad traceparent's order is not proposed)", len(spans))
	}
	if spans[0].Parent.IsValid() || spans[0].Status.Code == codes.Error {
		t.Errorf("first order's span: parent %v, status %v; want a root that did not fail", spans[0].Parent, spans[0].Status)
	}
	if spans[1].Status.Code != codes.Error {
		t.Errorf("refused order's span status %v, want an error", spans[1].Status)
	}
}

// TestApplyDesiredSpan: an order of central's revision gets an
// order.apply span that is a child of central's order.place span (the
// traceparent the order came with), and the order keeps the new span's
// traceparent; a full snapshot naming it again makes no other span.
func TestApplyDesiredSpan(t *testing.T) {
	exp := recordSpans(t)
	e, p := traceSite(t)
	central := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	obj := []byte(`{"action":"power_off","machine_id":"m1","traceparent":"` + central + `"}`)
	if _, _, err := p.ApplyDesired(t.Context(), &Desired{Revision: 1, Changes: []DesiredChange{{Kind: DesiredOrder, Key: "c1", Object: obj}}}); err != nil {
		t.Fatal(err)
	}
	spans := applySpans(exp)
	if len(spans) != 1 {
		t.Fatalf("%d order.apply spans, want 1", len(spans))
	}
	sp := spans[0]
	if got := sp.SpanContext.TraceID().String(); got != tracing.TraceID(central) {
		t.Errorf("order.apply in trace %s, want central's %s", got, tracing.TraceID(central))
	}
	if got := sp.Parent.SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("order.apply's parent %s, want central's order.place span", got)
	}
	if sp.Status.Code == codes.Error {
		t.Errorf("order.apply failed: %v", sp.Status)
	}
	want := tracing.Traceparent(trace.ContextWithSpanContext(context.Background(), sp.SpanContext))
	got, parts := orderTraceparents(t, e, "c1")
	if got != want || len(parts) != 1 || parts[0] != want {
		t.Errorf("order's traceparent %q, its job's %v; want the order.apply span's %q", got, parts, want)
	}
	if _, _, err := p.ApplyDesired(t.Context(), &Desired{Revision: 2, Full: true, Changes: []DesiredChange{{Kind: DesiredOrder, Key: "c1", Object: obj}}}); err != nil {
		t.Fatal(err)
	}
	if n := len(applySpans(exp)); n != 1 {
		t.Errorf("%d order.apply spans after a snapshot naming the order again, want still 1", n)
	}
	// An order the site refuses ends its span failed.
	bad := []byte(`{"action":"power_off","machine_id":"nobody","traceparent":"` + central + `"}`)
	if _, _, err := p.ApplyDesired(t.Context(), &Desired{Revision: 3, Changes: []DesiredChange{{Kind: DesiredOrder, Key: "c2", Object: bad}}}); err != nil {
		t.Fatal(err)
	}
	if spans := applySpans(exp); len(spans) != 2 || spans[1].Status.Code != codes.Error {
		t.Errorf("refused order's span: %+v, want a second span that failed", spans)
	}
}
