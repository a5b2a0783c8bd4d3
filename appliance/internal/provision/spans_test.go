package provision_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agent"
	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/testwait"
	"github.com/outposthq/outpost/internal/tracing"
)

const (
	traceWF  = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceAlt = "0af7651916cd43dd8448eb211c80319c"
	tpWF     = "00-" + traceWF + "-00f067aa0ba902b7-01"
)

// agentSpan is a span of the agent's, as it sends them.
func agentSpan(trace, id, parent, name string) tracing.Span {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	return tracing.Span{TraceID: trace, SpanID: fmt.Sprintf("%016s", id), Parent: parent, Name: name,
		Service: "outpost-agent", Node: "m1", Start: start, End: start.Add(3 * time.Second),
		Attrs: map[string]string{tracing.AttrActionType: "image.write"},
		Events: []tracing.SpanEvent{{Name: "progress", Time: start.Add(time.Second),
			Attrs: map[string]string{tracing.AttrBytes: "1048576"}}}}
}

// spansBody is the body of POST PathSpans with spans.
func spansBody(t *testing.T, spans ...tracing.Span) agentproto.Spans {
	t.Helper()
	body := agentproto.Spans{Spans: []json.RawMessage{}}
	for _, sp := range spans {
		raw, err := json.Marshal(sp)
		if err != nil {
			t.Fatal(err)
		}
		body.Spans = append(body.Spans, raw)
	}
	return body
}

// openSpans is a span store in the test's directory.
func openSpans(t *testing.T) *tracing.Store {
	t.Helper()
	st, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// An agent's spans of its workflow's trace are kept on the node, once
// however often they are sent; the workflow shows the agent its
// traceparent.
func TestAgentSpansKept(t *testing.T) {
	spans := openSpans(t)
	s := newSite(t, provision.Config{Spans: spans})
	w := s.provisioningTraced(t, tpWF)
	tok := s.creds.Workflow(w)
	if got := s.workflow(t, addrM1, tok); got.Traceparent != tpWF {
		t.Errorf("the agent's view of the workflow has traceparent %q, want %q", got.Traceparent, tpWF)
	}
	run := agentSpan(traceWF, "1", "00f067aa0ba902b7", tracing.SpanAgent)
	act := agentSpan(traceWF, "2", run.SpanID, tracing.SpanActionPrefix+"image")
	for range 2 {
		code, body := s.do(t, addrM1, "POST", agentproto.PathSpans, tok, spansBody(t, run, act))
		if code != http.StatusOK {
			t.Fatalf("POST spans: %d %s", code, body)
		}
		var ack agentproto.SpansAck
		if err := json.Unmarshal(body, &ack); err != nil || ack.Kept != 2 {
			t.Errorf("ack %s: %v, want kept 2", body, err)
		}
	}
	got, err := spans.Trace(traceWF)
	if err != nil || len(got) != 2 {
		t.Fatalf("the trace's spans kept: %+v, %v", got, err)
	}
	if got[1].Name != act.Name || got[1].Events[0].Attrs[tracing.AttrBytes] != "1048576" || got[1].Parent != run.SpanID {
		t.Errorf("the action's span kept as %+v", got[1])
	}
	if code, body := s.do(t, addrM1, "POST", agentproto.PathSpans, tok, spansBody(t)); code != http.StatusOK {
		t.Errorf("no spans: %d %s", code, body)
	}
	if n, _ := spans.Len(); n != 2 {
		t.Errorf("%d spans kept, want 2", n)
	}
}

// Spans are refused, and none of the request's kept, when one is of
// another trace than the credential's workflow's (403: a credential
// opens only what it names), malformed (400), or too many; the answer
// names the span and what is wrong. The credential is checked as for
// reports, and an appliance that keeps no spans answers 404.
func TestAgentSpansRefused(t *testing.T) {
	spans := openSpans(t)
	s := newSite(t, provision.Config{Spans: spans})
	w := s.provisioningTraced(t, tpWF)
	tok := s.creds.Workflow(w)
	good := agentSpan(traceWF, "1", "", tracing.SpanAgent)
	other := agentSpan(traceAlt, "2", "", tracing.SpanAgent)
	badID := agentSpan(traceWF, "3", "", tracing.SpanAgent)
	badID.SpanID = "xyz"
	backwards := agentSpan(traceWF, "4", "", tracing.SpanAgent)
	backwards.End = backwards.Start.Add(-time.Second)
	unknownField := spansBody(t, good)
	unknownField.Spans[0] = json.RawMessage(`{"trace_id":"` + traceWF + `","span_id":"0000000000000001","bogus":1}`)
	tooMany := agentproto.Spans{Spans: make([]json.RawMessage, agentproto.MaxSpans+1)}
	for i := range tooMany.Spans {
		tooMany.Spans[i] = unknownField.Spans[0]
	}
	refusedTrace := refusedCount(t, "trace")

	tests := map[string]struct {
		from, token string
		body        any
		status      int
		says        []string
	}{
		"another trace":    {addrM1, tok, spansBody(t, good, other), http.StatusForbidden, []string{"span 1", other.SpanID, traceAlt, "wf1"}},
		"a bad span id":    {addrM1, tok, spansBody(t, good, badID), http.StatusBadRequest, []string{"span 1", "span id", "xyz"}},
		"ends before":      {addrM1, tok, spansBody(t, backwards), http.StatusBadRequest, []string{"span 0", "before it starts"}},
		"an unknown field": {addrM1, tok, unknownField, http.StatusBadRequest, []string{"span 0", "bogus"}},
		"too many":         {addrM1, tok, tooMany, http.StatusBadRequest, []string{fmt.Sprint(agentproto.MaxSpans + 1), "more than"}},
		"not json":         {addrM1, tok, []byte("{"), http.StatusBadRequest, []string{"body"}},
		"no credential":    {addrM1, "", spansBody(t, good), http.StatusUnauthorized, nil},
		"another address":  {addrStranger, tok, spansBody(t, good), http.StatusForbidden, []string{"address"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := s.do(t, tt.from, "POST", agentproto.PathSpans, tt.token, tt.body)
			if code != tt.status {
				t.Fatalf("%d %s, want %d", code, body, tt.status)
			}
			e := errorBody(t, body)
			for _, want := range tt.says {
				if !strings.Contains(e.Error.Message, want) {
					t.Errorf("the answer %q does not say %q", e.Error.Message, want)
				}
			}
		})
	}
	if n, _ := spans.Len(); n != 0 {
		t.Errorf("%d spans kept of refused requests", n)
	}
	if got := refusedCount(t, "trace"); got != refusedTrace+1 {
		t.Errorf("outpost_agent_refused_total{reason=trace} went from %v to %v, want one more", refusedTrace, got)
	}

	// A workflow without a trace takes no span.
	s.putMachine(t, "m2", macM2)
	s.lease(t, addrM2, macM2)
	w2 := s.createWorkflow(t, &store.Workflow{ID: "wf2", MachineID: "m2", Template: "t", Purpose: store.PurposeProvision})
	code, body := s.do(t, addrM2, "POST", agentproto.PathSpans, s.creds.Workflow(w2), spansBody(t, good))
	if code != http.StatusForbidden || !strings.Contains(errorBody(t, body).Error.Message, "wf2 has no trace") {
		t.Errorf("a span for a workflow without a trace: %d %s, want 403 naming it", code, body)
	}

	// An appliance that keeps no spans says so.
	var none *tracing.Store
	bare := newSite(t, provision.Config{Spans: none})
	w = bare.provisioningTraced(t, tpWF)
	code, body = bare.do(t, addrM1, "POST", agentproto.PathSpans, bare.creds.Workflow(w), spansBody(t, good))
	if code != http.StatusNotFound || !strings.Contains(errorBody(t, body).Error.Message, "keeps no spans") {
		t.Errorf("spans to an appliance without a span store: %d %s, want 404", code, body)
	}
	if strings.Contains(s.n.Logs.String(), tok[1:20]) {
		t.Error("a credential reached the log")
	}
}

// The agent protocol's limit is tracing's.
func TestMaxSpans(t *testing.T) {
	if agentproto.MaxSpans != tracing.MaxSpansPerMsg {
		t.Errorf("agentproto.MaxSpans = %d, tracing.MaxSpansPerMsg = %d", agentproto.MaxSpans, tracing.MaxSpansPerMsg)
	}
}

// provisioningTraced is provisioning with the workflow in trace tp.
func (s *site) provisioningTraced(t *testing.T, tp string) *store.Workflow {
	t.Helper()
	s.putMachine(t, "m1", macM1)
	s.lease(t, addrM1, macM1)
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}},
	}})
	return s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision,
		Traceparent: tp})
}

// rebootRecorder is the agent's System: it records the reboot, and the
// spans the node had kept by then.
type rebootRecorder struct {
	spans  *tracing.Store
	mu     sync.Mutex
	kept   []tracing.Span
	reboot bool
}

func (r *rebootRecorder) Sync() {}
func (r *rebootRecorder) Reboot() error {
	kept, _ := r.spans.Trace(traceWF)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kept, r.reboot = kept, true
	return nil
}
func (r *rebootRecorder) PowerOff() error { return errors.New("not this test's") }
func (r *rebootRecorder) KexecLoad(_, _, _ string) (string, error) {
	return "", errors.New("not this test's")
}
func (r *rebootRecorder) KexecReboot() error { return errors.New("not this test's") }
func (r *rebootRecorder) rebooted() ([]tracing.Span, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kept, r.reboot
}

// The real agent, booted with the workflow's traceparent, runs it
// against the real agent API: its spans are kept on the node, of the
// workflow's trace, before the machine reboots.
func TestAgentSpansFromTheAgent(t *testing.T) {
	spans := openSpans(t)
	s := newSite(t, provision.Config{Spans: spans, Binding: provision.BindFirstClaim})
	s.putMachine(t, "m1", macM1)
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "hello", Type: "exec", Args: map[string]string{"command": "true"}},
		{Name: "reboot", Type: "reboot", Needs: []string{"hello"}},
	}})
	w := s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision,
		Traceparent: tpWF})
	srv := httptest.NewServer(s.handler)
	t.Cleanup(srv.Close)
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	line := fmt.Sprintf("%s=%s %s=%s %s=m1 %s=%s %s=%s", agentproto.ParamURL, srv.URL, agentproto.ParamToken, s.creds.Workflow(w),
		agentproto.ParamMachine, agentproto.ParamMAC, macM1, agentproto.ParamTraceparent, tpWF)
	if err := os.WriteFile(cmdline, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	sys := &rebootRecorder{spans: spans}
	a := agent.New(agent.Config{CmdlinePath: cmdline, Root: t.TempDir(), MountDir: t.TempDir(), System: sys,
		RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond, PollMin: 5 * time.Millisecond, PollMax: 50 * time.Millisecond,
		TraceBatch: time.Hour}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var kept []tracing.Span
	testwait.For(t, "the agent's reboot", 30*time.Second, func() bool {
		var ok bool
		kept, ok = sys.rebooted()
		return ok
	})
	var names []string
	for _, sp := range kept {
		names = append(names, sp.Name)
		if sp.Service != "outpost-agent" || sp.Node != "m1" {
			t.Errorf("span %s of service %s on node %s", sp.Name, sp.Service, sp.Node)
		}
	}
	slices.Sort(names)
	if want := []string{"action.hello", "action.reboot", tracing.SpanAgent}; !slices.Equal(names, want) {
		t.Errorf("spans kept before the reboot: %q, want %q", names, want)
	}
}
