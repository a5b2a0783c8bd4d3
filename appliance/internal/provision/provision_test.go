package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// site is a single-node appliance with the agent API on an httptest
// server.
type site struct {
	n     *apptest.Node
	creds *provision.Credentials
	url   string
}

func newSite(t *testing.T) *site {
	t.Helper()
	n := apptest.Start(t)
	creds := provision.NewCredentials(n.Key.Derive("outpost agent credentials v1"))
	srv := httptest.NewServer(provision.New(provision.Config{Site: n.Site, Store: n.DB, Credentials: creds, Log: slog.New(slog.NewTextHandler(n.Logs, nil))}).Handler())
	t.Cleanup(srv.Close)
	return &site{n: n, creds: creds, url: srv.URL}
}

// template stores a template.
func (s *site) template(t *testing.T, tpl *store.Template) {
	t.Helper()
	if _, err := s.n.Site.PutTemplate(t.Context(), tpl, 0); err != nil {
		t.Fatalf("put template %s: %v", tpl.Name, err)
	}
}

// createWorkflow creates a workflow; the site draws its nonce.
func (s *site) createWorkflow(t *testing.T, w *store.Workflow) *store.Workflow {
	t.Helper()
	created, err := s.n.Site.CreateWorkflow(t.Context(), w)
	if err != nil {
		t.Fatalf("create workflow %s: %v", w.ID, err)
	}
	return created
}

// provisioning stores machine m1 and a workflow wf1 for it whose
// template is: a (exec, timeout) → b (exec).
func (s *site) provisioning(t *testing.T, timeout time.Duration) *store.Workflow {
	t.Helper()
	if _, err := s.n.Site.PutMachine(t.Context(), &store.Machine{ID: "m1", Arch: "x86_64", State: store.StateReady,
		Interfaces: []store.Interface{{MAC: "52:54:00:00:00:01", Boot: true}}}, 0); err != nil {
		t.Fatal(err)
	}
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}, Timeout: store.Duration(timeout)},
		{Name: "b", Type: "exec", Args: map[string]string{"command": "{{ .hostname }}"}, Needs: []string{"a"}},
	}})
	return s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision})
}

func (s *site) do(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (s *site) workflow(t *testing.T, token string) agentproto.Workflow {
	t.Helper()
	code, body := s.do(t, "GET", agentproto.PathWorkflow, token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET workflow: %d %s", code, body)
	}
	var w agentproto.Workflow
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func (s *site) report(t *testing.T, token string, r agentproto.Report, want int) agentproto.Workflow {
	t.Helper()
	code, body := s.do(t, "POST", agentproto.PathReport, token, r)
	if code != want {
		t.Fatalf("report %+v: %d %s, want %d", r, code, body, want)
	}
	var w agentproto.Workflow
	json.Unmarshal(body, &w)
	return w
}

func (s *site) machine(t *testing.T, id string) *store.Machine {
	t.Helper()
	var m *store.Machine
	s.n.DB.View(func(tx *store.Tx) (err error) { m, err = store.Get[store.Machine](tx, id); return err })
	return m
}

func TestAgentRunsWorkflow(t *testing.T) {
	s := newSite(t)
	w := s.provisioning(t, 0)
	tok := s.creds.Workflow(w)

	got := s.workflow(t, tok)
	if got.Status != "pending" || len(got.Actions) != 2 || strings.Join(got.Ready, ",") != "a" {
		t.Fatalf("workflow = %+v, want pending with a ready", got)
	}
	if got.Actions[1].Args["command"] != "m1" {
		t.Errorf("b's command = %q, want the bound hostname m1", got.Actions[1].Args["command"])
	}
	start := agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportStart}
	s.report(t, tok, start, 200)
	if after := s.report(t, tok, start, 200); after.Actions[0].Status != "running" { // a duplicate
		t.Errorf("after a duplicate start: %+v", after.Actions[0])
	}
	s.report(t, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportProgress, Progress: 50, Message: "half"}, 200)
	got = s.report(t, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportFinish, OK: true}, 200)
	if strings.Join(got.Ready, ",") != "b" {
		t.Errorf("ready after a: %v, want b", got.Ready)
	}
	// Starting b twice over (attempt 2 before 1) is refused: 409, final.
	s.report(t, tok, agentproto.Report{Action: "b", Attempt: 2, Kind: agentproto.ReportStart}, http.StatusConflict)
	s.report(t, tok, agentproto.Report{Action: "b", Attempt: 1, Kind: agentproto.ReportStart}, 200)
	got = s.report(t, tok, agentproto.Report{Action: "b", Attempt: 1, Kind: agentproto.ReportFinish, OK: true}, 200)
	if got.Status != "succeeded" || !got.Done() {
		t.Errorf("workflow after b: %+v", got)
	}
	if m := s.machine(t, "m1"); m.State != store.StateProvisioned {
		t.Errorf("machine is %s, want provisioned", m.State)
	}
	s.report(t, tok, agentproto.Report{Action: "b", Attempt: 2, Kind: agentproto.ReportStart}, http.StatusConflict)
	// Bad bodies are 400 and change nothing.
	if code, body := s.do(t, "POST", agentproto.PathReport, tok, map[string]any{"action": "a", "bogus": 1}); code != http.StatusBadRequest {
		t.Errorf("report with an unknown field: %d %s", code, body)
	}
}

func TestAgentCredentialRefused(t *testing.T) {
	s := newSite(t)
	w := s.provisioning(t, 0)
	good := s.creds.Workflow(w)
	other := *w
	other.Nonce = "another"
	forged := s.creds.Workflow(&other) // right form, wrong nonce
	wrongKey := provision.NewCredentials([]byte("not the site's key")).Workflow(w)
	before := s.n.DB.AppliedIndex()
	for name, tok := range map[string]string{
		"none": "", "garbage": "x", "forged": forged, "wrong key": wrongKey,
		"truncated": good[:len(good)-1], "discovery for another MAC": s.creds.Discovery("52:54:00:00:00:99")[:10],
	} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"GET", agentproto.PathWorkflow, nil},
			{"POST", agentproto.PathReport, agentproto.Report{Action: "a", Attempt: 1, Kind: "start"}},
			{"POST", agentproto.PathHardware, agentproto.Hardware{MAC: "52:54:00:00:00:01"}},
		} {
			code, body := s.do(t, req.method, req.path, tok, req.body)
			if code != http.StatusUnauthorized {
				t.Errorf("%s: %s %s = %d %s, want 401", name, req.method, req.path, code, body)
			}
		}
	}
	if after := s.n.DB.AppliedIndex(); after != before {
		t.Errorf("refused requests moved the applied index from %d to %d", before, after)
	}
	if strings.Contains(s.n.Logs.String(), good[1:20]) || strings.Contains(s.n.Logs.String(), forged[1:20]) {
		t.Error("a credential reached the log")
	}
}

func TestDiscovery(t *testing.T) {
	s := newSite(t)
	mac := "52:54:00:aa:bb:cc"
	tok := s.creds.Discovery(mac)
	if code, body := s.do(t, "GET", agentproto.PathWorkflow, tok, nil); code != http.StatusNotFound {
		t.Errorf("workflow before discovery: %d %s, want 404", code, body)
	}
	hw := agentproto.Hardware{MAC: mac, CPUs: 4, MemoryBytes: 8 << 30, Vendor: "QEMU",
		Disks: []agentproto.Disk{{Name: "vda", SizeBytes: 1 << 30}},
		NICs:  []agentproto.NIC{{Name: "eth0", MAC: mac, Driver: "virtio_net"}, {Name: "eth1", MAC: "52:54:00:aa:bb:cd"}}}
	// Another MAC than the credential's is refused.
	bad := hw
	bad.MAC = "52:54:00:aa:bb:cd"
	if code, _ := s.do(t, "POST", agentproto.PathHardware, tok, bad); code != http.StatusBadRequest {
		t.Errorf("hardware for another MAC: %d, want 400", code)
	}
	code, body := s.do(t, "POST", agentproto.PathHardware, tok, hw)
	var ack agentproto.HardwareAck
	json.Unmarshal(body, &ack)
	if code != 200 || ack.MachineID != "m-525400aabbcc" || !ack.Created {
		t.Fatalf("hardware: %d %s", code, body)
	}
	m := s.machine(t, ack.MachineID)
	if m.State != store.StateDiscovered || m.Hardware.CPUs != 4 || len(m.Interfaces) != 2 || len(m.Disks) != 1 {
		t.Errorf("discovered machine = %+v", m)
	}
	// Reported again: updated, not duplicated.
	hw.CPUs = 8
	code, body = s.do(t, "POST", agentproto.PathHardware, tok, hw)
	json.Unmarshal(body, &ack)
	if code != 200 || ack.Created || s.machine(t, ack.MachineID).Hardware.CPUs != 8 {
		t.Errorf("second report: %d %s", code, body)
	}
	// Once a workflow exists for the machine, the discovery credential
	// opens it.
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}})
	s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: ack.MachineID, Template: "t", Purpose: store.PurposeProvision})
	if w := s.workflow(t, tok); w.ID != "wf1" {
		t.Errorf("workflow through the discovery credential: %+v", w)
	}
}

func TestTimerTimesOut(t *testing.T) {
	s := newSite(t)
	w := s.provisioning(t, time.Second)
	tok := s.creds.Workflow(w)
	s.report(t, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportStart}, 200)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- provision.RunTimer(ctx, s.n.Site, s.n.DB, 100*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := s.machine(t, "m1"); m.State == store.StateFailed {
			if !strings.Contains(m.Reason, "timed out") {
				t.Errorf("machine reason %q, want it to say the action timed out", m.Reason)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the workflow did not time out: machine %+v", s.machine(t, "m1"))
}
