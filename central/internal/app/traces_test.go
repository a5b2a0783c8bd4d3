package app

import (
	"net/http"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// centrald records its own spans through its store: an order placed
// through the API is a trace whose order.place span (service centrald)
// the trace route then answers; the log line of the placing carries the
// order's trace id; the request is a span named by its route.
func TestCentralTraces(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.Addr = filepath.Join(t.TempDir(), "data"), "127.0.0.1:0"
	logs := &centraltest.Buffer{}
	r := start(t, cfg, logs)
	defer r.stop()
	token := r.waitAdminToken(t, cfg)
	do := func(method, path, body string, out any) int {
		t.Helper()
		return apiCall(t, http.DefaultClient, method, r.url+path, token, body, out)
	}
	if code := do("POST", "/v1/sites", `{"id":"fra-1"}`, nil); code != http.StatusCreated {
		t.Fatalf("create site: %d", code)
	}
	var placed struct{ Order syncproto.Order }
	if code := do("PUT", "/v1/sites/fra-1/orders/o1", `{"action":"power_on","machine_id":"m1"}`, &placed); code != http.StatusOK {
		t.Fatalf("put order: %d", code)
	}
	traceID := tracing.TraceID(placed.Order.Traceparent)
	if traceID == "" {
		t.Fatalf("the order has no traceparent: %+v", placed.Order)
	}
	var tr struct {
		Spans []tracing.Span `json:"spans"`
	}
	if !poll(func() bool { return do("GET", "/v1/traces/"+traceID, "", &tr) == http.StatusOK }) {
		t.Fatalf("trace %s never showed up", traceID)
	}
	if len(tr.Spans) != 1 || tr.Spans[0].Name != tracing.SpanOrderPlace || tr.Spans[0].Service != "centrald" || tr.Spans[0].Attrs[tracing.AttrOrder] != "o1" {
		t.Fatalf("trace %s: %+v, want central's order.place", traceID, tr.Spans)
	}
	if !regexp.MustCompile(`msg="order placed".*trace_id=` + traceID).MatchString(logs.String()) {
		t.Errorf("the order's log line does not carry its trace id %s:\n%s", traceID, logs)
	}
}
