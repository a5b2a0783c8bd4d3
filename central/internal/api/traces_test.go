package api

import (
	"context"
	"errors"
	"github.com/outposthq/outpost/internal/testwait"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// recordSpans makes the global tracer provider one that records every
// span in memory, for the test.
func recordSpans(t *testing.T) *tracetest.InMemoryExporter {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	old := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(old); _ = tp.Shutdown(context.Background()) })
	return exp
}

// An order placed at central is the root of its own trace: its
// order.place span (order, site, machine, image), linked to the
// request's span, which is named by its route; its traceparent goes to
// the site on the order, and the machine's last order keeps its trace
// id. The trace routes answer the trace with its waterfall, by id and
// by machine; and the client reads them.
func TestTraceRoutes(t *testing.T) {
	exp := recordSpans(t)
	e := newEnv(t)
	cred := e.createSite("fra-1")
	conn := e.connect("fra-1", cred)
	send(t, conn, &syncproto.Events{First: 1, Last: 2, Events: []syncproto.Event{
		siteEvent(t, 1, "m1", "machine.created", "machine m1 created (ready)", map[string]string{"state": "ready"}),
		siteEvent(t, 2, "m2", "machine.created", "machine m2 created (ready)", map[string]string{"state": "ready"}),
	}})
	if a, ok := recv(t, conn).(*syncproto.EventsAck); !ok || a.Seq != 2 {
		t.Fatalf("ack: %+v", a)
	}

	var placed struct {
		Order syncproto.Order `json:"order"`
	}
	if code := e.do("PUT", "/v1/sites/fra-1/orders/o1", `{"action":"power_cycle","machine_id":"m1"}`, &placed); code != http.StatusOK {
		t.Fatalf("put order: %d", code)
	}
	traceID := tracing.TraceID(placed.Order.Traceparent)
	if traceID == "" {
		t.Fatalf("the order carries no traceparent: %+v", placed.Order)
	}
	var place, request sdktrace.ReadOnlySpan
	for _, s := range exp.GetSpans().Snapshots() {
		switch s.Name() {
		case tracing.SpanOrderPlace:
			place = s
		case "PUT /v1/sites/{site}/orders/{key}":
			request = s
		}
	}
	if place == nil || request == nil {
		t.Fatalf("spans %v: want order.place and the request's, named by its route", names(exp))
	}
	sp := tracing.FromSDK(place)
	if sp.TraceID != traceID || sp.Parent != "" || sp.Attrs[tracing.AttrOrder] != "o1" || sp.Attrs[tracing.AttrSite] != "fra-1" || sp.Attrs[tracing.AttrMachine] != "m1" {
		t.Fatalf("order.place: %+v; want the root of trace %s with its order, site and machine", sp, traceID)
	}
	if l := place.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != request.SpanContext().SpanID() {
		t.Fatalf("order.place links %v, want the request's span", l)
	}
	// The same order again keeps its trace.
	var again struct {
		Order syncproto.Order `json:"order"`
	}
	if code := e.do("PUT", "/v1/sites/fra-1/orders/o1", `{"action":"power_cycle","machine_id":"m1"}`, &again); code != http.StatusOK || again.Order.Traceparent != placed.Order.Traceparent {
		t.Fatalf("the order placed again: %d, traceparent %q, want %q", code, again.Order.Traceparent, placed.Order.Traceparent)
	}
	var rec struct {
		LastOrder struct {
			TraceID string `json:"trace_id"`
		} `json:"last_order"`
	}
	if e.do("GET", "/v1/fleet/machines/fra-1/m1", "", &rec); rec.LastOrder.TraceID != traceID {
		t.Fatalf("machine's last order's trace %q, want %q", rec.LastOrder.TraceID, traceID)
	}

	// The trace: central's span and the site's (the fixture's, under the
	// order's trace id).
	spans := centraltest.ProvisionTrace(traceID, sp.Start)
	spans[1].Parent = sp.SpanID // the site's order.apply, child of central's order.place
	spans = append(spans[1:], sp)
	if _, err := e.db.AddSpans(spans); err != nil {
		t.Fatal(err)
	}
	c := client.New(e.srv.URL, e.token, nil)
	for name, read := range map[string]func() (*client.Trace, error){
		"by id":      func() (*client.Trace, error) { return c.Trace(t.Context(), traceID) },
		"by machine": func() (*client.Trace, error) { return c.MachineTrace(t.Context(), "fra-1", "m1") },
	} {
		tr, err := read()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tr.TraceID != traceID || len(tr.Spans) != len(spans) || len(tr.Phases) != len(tracing.PhaseNames) || tr.Phases[0].Name != tracing.PhaseOrderDelivery ||
			!tr.Completeness.Complete || len(tr.Completeness.Services) != 3 {
			t.Fatalf("%s: %s %d spans, phases %+v, %+v", name, tr.TraceID, len(tr.Spans), tr.Phases, tr.Completeness)
		}
	}

	// Reads nobody traces are no spans (the store is for provisions);
	// one whose caller sends a traceparent is, named by its route.
	if slices.ContainsFunc(names(exp), func(n string) bool { return strings.HasPrefix(n, "GET ") }) {
		t.Errorf("spans %q: reads without a traceparent recorded", names(exp))
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+"/v1/traces/"+traceID, nil)
	req.Header.Set("Authorization", "Bearer "+e.token)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("a traced read: %v, %v", res, err)
	}
	res.Body.Close()
	// The server ends the span once the handler returns, which may be
	// after the answer reached the client.
	testwait.For(t, "the traced read's span, named by its route", 10*time.Second, func() bool {
		return slices.Contains(names(exp), "GET /v1/traces/{trace_id}")
	})

	var ce *client.Error
	tests := map[string]struct {
		read     func() error
		status   int
		contains string
	}{
		"unknown trace":  {func() error { _, err := c.Trace(t.Context(), strings.Repeat("ab", 16)); return err }, http.StatusNotFound, strings.Repeat("ab", 16)},
		"not a trace id": {func() error { _, err := c.Trace(t.Context(), "xyz"); return err }, http.StatusBadRequest, "32 hex digits"},
		"no order":       {func() error { _, err := c.MachineTrace(t.Context(), "fra-1", "m2"); return err }, http.StatusNotFound, "machine fra-1/m2: no order"},
		"no machine":     {func() error { _, err := c.MachineTrace(t.Context(), "fra-1", "m9"); return err }, http.StatusNotFound, "m9"},
	}
	for name, tt := range tests {
		if err := tt.read(); !errors.As(err, &ce) || ce.Status != tt.status || !strings.Contains(ce.Message, tt.contains) {
			t.Errorf("%s: %v, want %d saying %q", name, err, tt.status, tt.contains)
		}
	}
}

func names(exp *tracetest.InMemoryExporter) []string {
	var out []string
	for _, s := range exp.GetSpans().Snapshots() {
		out = append(out, s.Name())
	}
	return out
}
