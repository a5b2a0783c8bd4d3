package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/internal/tracing"
)

// TestDamagedSpanStore: a span store that is not a bbolt file stops the
// start with an error naming it.
func TestDamagedSpanStore(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.SpansPath(), []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), io.Discard)
	if err == nil || !strings.Contains(err.Error(), cfg.SpansPath()) {
		t.Fatalf("Run with a damaged span store: %v, want an error naming %s", err, cfg.SpansPath())
	}
}

// TestOrderTrace: an appliance records its spans in its span store, and
// its API shows an order placed through it as one trace with the
// caller's: the request's span, the order.apply span beneath it; the
// machine's trace is the order's. Logs of a request carry its trace id.
func TestOrderTrace(t *testing.T) {
	cfg := testConfig(t)
	logs := &apptest.SyncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	out, done := &apptest.SyncBuffer{}, make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(io.MultiWriter(logs, t.Output()), &slog.HandlerOptions{Level: slog.LevelDebug})), out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	token := waitOut(t, out, done, regexp.MustCompile(`admin token \(shown once; also saved to .*\):\n  (\S+)\n`))[1]
	do := func(method, path, body string, header ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, cfg.APIURL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	for _, p := range [][2]string{
		{"/v1/templates/wipe", `{"actions":[{"name":"wipe","type":"disk.wipe","args":{"device":"/dev/sda"}}]}`},
		{"/v1/machines/m1", `{"hostname":"m1","interfaces":[{"mac":"02:00:00:00:00:01"}],"bmc":{"address":"127.0.0.1:9","username":"admin"}}`},
	} {
		if code, body := do("PUT", p[0], p[1]); code/100 != 2 {
			t.Fatalf("PUT %s: %d %s", p[0], code, body)
		}
	}
	caller := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	if code, body := do("PUT", "/v1/orders/o1", `{"action":"deprovision","machine_id":"m1"}`, "traceparent", caller); code != http.StatusCreated {
		t.Fatalf("place the order: %d %s", code, body)
	}
	var tr api.Trace
	waitFor(t, "the order's spans in the machine's trace", func() bool {
		code, body := do("GET", "/v1/machines/m1/trace", "")
		if code != http.StatusOK || json.Unmarshal([]byte(body), &tr) != nil {
			return false
		}
		names := map[string]bool{}
		for _, s := range tr.Spans {
			names[s.Name] = true
		}
		return names[tracing.SpanOrderApply] && names["PUT /v1/orders/{key}"]
	})
	if tr.TraceID != tracing.TraceID(caller) {
		t.Errorf("the machine's trace %s, want the caller's %s", tr.TraceID, tracing.TraceID(caller))
	}
	for _, s := range tr.Spans {
		if s.Service != "applianced" || s.Node != cfg.NodeID {
			t.Errorf("span %s recorded by %s %s, want applianced %s", s.Name, s.Service, s.Node, cfg.NodeID)
		}
	}
	if !regexp.MustCompile(`msg="http request" method=PUT path=/v1/orders/o1 .*trace_id=` + tr.TraceID + ` span_id=[0-9a-f]{16}`).MatchString(logs.String()) {
		t.Errorf("the request's log line does not carry its trace id %s", tr.TraceID)
	}
	if tr.Completeness.Orphans != 1 {
		t.Errorf("%d orphans, want 1 (the request's span: its parent is the caller's)", tr.Completeness.Orphans)
	}
}
