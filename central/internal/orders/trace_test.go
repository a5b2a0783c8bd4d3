package orders

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// Each order of a batch is the root of its own trace: an order.place
// span (ended once placed) with its order, site, machine and image,
// never its values, whose traceparent the order carries to its site.
func TestPlaceTraces(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	old := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(old); _ = tp.Shutdown(context.Background()) })

	svc, db := testService(t)
	req := &Request{Action: ActionProvision, Targets: []TargetRef{{"s1", "m1"}, {"s2", "m3"}, {"s1", "m2"}},
		Params: OrderParams{Image: "debian-12", UserData: "#cloud-config\npassword: SECRET-UD\n"}}
	res, err := svc.Place(t.Context(), "alice", "", req)
	if err != nil || len(res.Placed) != 2 {
		t.Fatalf("place: %+v, %v", res, err)
	}
	spans := map[string]tracing.Span{} // by trace id
	for _, s := range exp.GetSpans().Snapshots() {
		sp := tracing.FromSDK(s)
		if sp.Name == tracing.SpanOrderPlace {
			spans[sp.TraceID] = sp
		}
		if j, _ := json.Marshal(sp); strings.Contains(string(j), "SECRET-UD") {
			t.Errorf("span %s holds the user data: %s", sp.Name, j)
		}
	}
	if len(spans) != 2 {
		t.Fatalf("%d order.place traces, want one per order (2)", len(spans))
	}
	for _, p := range res.Placed {
		raw, err := db.Desired(p.Site, store.KindOrder, p.Order)
		if err != nil {
			t.Fatal(err)
		}
		var o syncproto.Order
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		sp, ok := spans[tracing.TraceID(o.Traceparent)]
		if !ok {
			t.Fatalf("order %s: traceparent %q names no order.place span", p.Order, o.Traceparent)
		}
		want := map[string]string{tracing.AttrOrder: p.Order, tracing.AttrSite: p.Site, tracing.AttrMachine: p.Machine, tracing.AttrImage: "debian-12"}
		for k, v := range want {
			if sp.Attrs[k] != v {
				t.Errorf("order %s's span: %s = %q, want %q", p.Order, k, sp.Attrs[k], v)
			}
		}
		if sp.Parent != "" || sp.End.IsZero() || sp.Error != "" {
			t.Errorf("order %s's span: %+v, want an ended root", p.Order, sp)
		}
	}
}
