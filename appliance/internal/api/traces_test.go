package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/tracing"
)

// tracedNode is an appliance whose API records spans to its node's span
// store, and gathers traces from the site's nodes.
func tracedNode(t *testing.T) (*apptest.Node, *tracing.Provider, string) {
	t.Helper()
	n := apptest.Start(t)
	spans, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spans.Close() })
	n.Node.SetSpanStore(spans)
	p, err := tracing.Start(tracing.Config{Service: "applianced", Node: "n1", Store: spans, Batch: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Shutdown(t.Context()) })
	srv := httptest.NewServer(api.New(api.Config{Site: n.Site.Proposer, Store: n.DB, Cluster: n.Node, SiteKey: n.Key,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Traces: n.Node}).Handler())
	t.Cleanup(srv.Close)
	return n, p, srv.URL
}

// TestTraces: an order placed through the API is one trace with the
// caller's: the request's span (named by its route), the order.apply
// span beneath it, whose traceparent the order's workflow carries; the
// machine's trace is its latest workflow's; a viewer reads them.
func TestTraces(t *testing.T) {
	n, p, url := tracedNode(t)
	viewer := createToken(t, n, "watcher", access.Viewer)
	at := &apptest.Node{URL: url}
	for path, body := range map[string]string{
		"/v1/templates/wipe": `{"actions":[{"name":"wipe","type":"disk.wipe","args":{"device":"/dev/sda"}}]}`,
		"/v1/machines/m1":    `{"hostname":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"127.0.0.1:623","username":"admin"}}`,
	} {
		if code, out := call(t, at, "PUT", path, n.Token, body); code/100 != 2 {
			t.Fatalf("PUT %s: %d %s", path, code, out)
		}
	}
	code, body := call(t, at, "GET", "/v1/machines/m1/trace", viewer, "")
	if code != http.StatusNotFound || !strings.Contains(decodeErr(t, body).Error.Message, "m1") {
		t.Errorf("a machine without a workflow: %d %s, want 404 naming it", code, body)
	}

	caller := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if code, out := call(t, at, "PUT", "/v1/orders/o1", n.Token, `{"action":"deprovision","machine_id":"m1"}`, "traceparent", caller); code != http.StatusCreated {
		t.Fatalf("place the order: %d %s", code, out)
	}
	if err := p.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var tr api.Trace
	code, body = call(t, at, "GET", "/v1/machines/m1/trace", viewer, "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &tr) != nil {
		t.Fatalf("machine trace: %d %s", code, body)
	}
	if tr.TraceID != tracing.TraceID(caller) {
		t.Errorf("machine's trace %s, want the caller's %s", tr.TraceID, tracing.TraceID(caller))
	}
	byName := map[string]tracing.Span{}
	for _, s := range tr.Spans {
		byName[s.Name] = s
	}
	req, apply := byName["PUT /v1/orders/{key}"], byName[tracing.SpanOrderApply]
	switch {
	case req.SpanID == "":
		t.Fatalf("no span of the request in %s", body)
	case req.Parent != "00f067aa0ba902b7":
		t.Errorf("the request's span's parent %q, want the caller's span", req.Parent)
	case apply.Parent != req.SpanID:
		t.Errorf("order.apply's parent %q, want the request's span %s", apply.Parent, req.SpanID)
	case apply.Service != "applianced" || apply.Node != "n1" || apply.Attrs[tracing.AttrOrder] != "o1":
		t.Errorf("order.apply %+v, want applianced n1's, of order o1", apply)
	}
	var wf store.Workflow
	if code, out := call(t, at, "GET", "/v1/workflows/o1", viewer, ""); code != http.StatusOK || json.Unmarshal([]byte(out), &wf) != nil {
		t.Fatalf("workflow: %d %s", code, out)
	}
	if want := "00-" + tr.TraceID + "-" + apply.SpanID + "-01"; wf.Traceparent != want {
		t.Errorf("workflow's traceparent %q, want order.apply's %q", wf.Traceparent, want)
	}

	var same api.Trace
	code, body = call(t, at, "GET", "/v1/traces/"+tr.TraceID, viewer, "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &same) != nil || len(same.Spans) != len(tr.Spans) {
		t.Errorf("GET /v1/traces/%s: %d %s, want the machine's trace", tr.TraceID, code, body)
	}
	for _, id := range []string{"nothing-here", strings.Repeat("0", 31) + "1"} {
		code, body = call(t, at, "GET", "/v1/traces/"+id, viewer, "")
		if code == http.StatusOK {
			var empty api.Trace
			if json.Unmarshal([]byte(body), &empty) != nil || len(empty.Spans) != 0 {
				t.Errorf("GET /v1/traces/%s: %s, want no spans", id, body)
			}
		} else if code != http.StatusNotFound {
			t.Errorf("GET /v1/traces/%s: %d %s, want 404 or an empty trace", id, code, body)
		}
	}
	if code, _ := call(t, at, "GET", "/v1/traces/"+tr.TraceID, "", ""); code != http.StatusUnauthorized {
		t.Errorf("a trace without a token: %d, want 401", code)
	}
}
