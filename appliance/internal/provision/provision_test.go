package provision_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/outposthq/outpost/internal/tracing"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/provision"
	sitepkg "github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// Addresses on the site's subnet lab (198.18.0.0/24).
const (
	addrM1       = "198.18.0.11" // leased to m1's MAC
	addrM2       = "198.18.0.12" // leased to m2's MAC
	addrStranger = "198.18.0.66" // leased to nobody
	macM1        = "52:54:00:00:00:01"
	macM2        = "52:54:00:00:00:02"
)

// site is a single-node appliance and its agent API, which requests reach
// in process from the address they name.
type site struct {
	n       *apptest.Node
	creds   *provision.Credentials
	handler http.Handler
	clock   *clock
}

// clock is the agent API's clock, which tests move.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time         { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration)    { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock() *clock                  { return &clock{t: time.Now()} }
func (s *site) leaseUntil() time.Time   { return s.clock.now().Add(24 * time.Hour) }
func (s *site) discoveryExp() time.Time { return s.clock.now().Add(time.Hour) }

// newSite starts a site with subnet lab, whose agent API binds credentials
// as cfg says (its Site, Store, Credentials, Log and Now are filled in).
func newSite(t *testing.T, cfg provision.Config) *site {
	t.Helper()
	n := apptest.Start(t)
	s := &site{n: n, creds: provision.NewCredentials(n.Key.Derive("outpost agent credentials v1")), clock: newClock()}
	cfg.Site, cfg.Store, cfg.Credentials, cfg.Now = n.Site, n.DB, s.creds, s.clock.now
	cfg.Log = slog.New(slog.NewTextHandler(n.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s.handler = provision.New(cfg).Handler()
	if _, err := n.Site.PutSubnet(t.Context(), &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24",
		Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}}}, 0); err != nil {
		t.Fatal(err)
	}
	return s
}

// lease gives mac an active lease on ip, as the DHCP server's ACK does.
func (s *site) lease(t *testing.T, ip, mac string) {
	t.Helper()
	now := s.clock.now()
	if _, err := s.n.Site.CommitLease(t.Context(), &store.Lease{IP: ip, MAC: mac, Subnet: "lab", State: store.LeaseActive,
		Starts: now, Expires: s.leaseUntil()}); err != nil {
		t.Fatalf("lease %s to %s: %v", ip, mac, err)
	}
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
	// A workflow's trace is that of the request creating it: the
	// traceparent asked for, as if the request had carried it.
	created, err := s.n.Site.CreateWorkflow(tracing.WithRemoteParent(t.Context(), w.Traceparent), w)
	if err != nil {
		t.Fatalf("create workflow %s: %v", w.ID, err)
	}
	return created
}

// machine stores a ready machine with one interface.
func (s *site) putMachine(t *testing.T, id, mac string) {
	t.Helper()
	if _, err := s.n.Site.PutMachine(t.Context(), &store.Machine{ID: id, Arch: "x86_64", State: store.StateReady,
		Interfaces: []store.Interface{{MAC: mac, Boot: true}}}, 0); err != nil {
		t.Fatal(err)
	}
}

// provisioning stores machine m1, leased addrM1, and a workflow wf1 for
// it whose template is: a (exec, timeout) → b (exec).
func (s *site) provisioning(t *testing.T, timeout time.Duration) *store.Workflow {
	t.Helper()
	s.putMachine(t, "m1", macM1)
	s.lease(t, addrM1, macM1)
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}, Timeout: store.Duration(timeout)},
		{Name: "b", Type: "exec", Args: map[string]string{"command": "{{ .hostname }}"}, Needs: []string{"a"}},
	}})
	return s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision})
}

// do sends a request from address from (port 40000) with credential
// token ("" for none) and body (JSON unless a []byte or nil).
func (s *site) do(t *testing.T, from, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, path, rd)
	req.RemoteAddr = netip.AddrPortFrom(netip.MustParseAddr(from), 40000).String()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (s *site) workflow(t *testing.T, from, token string) agentproto.Workflow {
	t.Helper()
	code, body := s.do(t, from, "GET", agentproto.PathWorkflow, token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET workflow from %s: %d %s", from, code, body)
	}
	var w agentproto.Workflow
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func (s *site) report(t *testing.T, from, token string, r agentproto.Report, want int) agentproto.Workflow {
	t.Helper()
	code, body := s.do(t, from, "POST", agentproto.PathReport, token, r)
	if code != want {
		t.Fatalf("report %+v from %s: %d %s, want %d", r, from, code, body, want)
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

func (s *site) storedWorkflow(t *testing.T, id string) *store.Workflow {
	t.Helper()
	var w *store.Workflow
	if err := s.n.DB.View(func(tx *store.Tx) (err error) { w, err = store.Get[store.Workflow](tx, id); return err }); err != nil {
		t.Fatal(err)
	}
	return w
}

// refusedCount is outpost_agent_refused_total{reason}.
func refusedCount(t *testing.T, reason string) float64 {
	t.Helper()
	for _, c := range provision.Collectors() {
		ch := make(chan prometheus.Metric, 16)
		c.Collect(ch)
		close(ch)
		for m := range ch {
			var pb dto.Metric
			m.Write(&pb)
			for _, l := range pb.Label {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return pb.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no outpost_agent_refused_total{reason=%q}", reason)
	return 0
}

// errorBody decodes an error answer.
func errorBody(t *testing.T, body []byte) agentproto.Error {
	t.Helper()
	var e agentproto.Error
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error body %s: %v, want code and message", body, err)
	}
	return e
}

func TestAgentRunsWorkflow(t *testing.T) {
	s := newSite(t, provision.Config{})
	w := s.provisioning(t, 0)
	tok := s.creds.Workflow(w)

	got := s.workflow(t, addrM1, tok)
	if got.Status != "pending" || len(got.Actions) != 2 || strings.Join(got.Ready, ",") != "a" {
		t.Fatalf("workflow = %+v, want pending with a ready", got)
	}
	if got.Actions[1].Args["command"] != "m1" {
		t.Errorf("b's command = %q, want the bound hostname m1", got.Actions[1].Args["command"])
	}
	start := agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportStart}
	s.report(t, addrM1, tok, start, 200)
	if after := s.report(t, addrM1, tok, start, 200); after.Actions[0].Status != "running" { // a duplicate
		t.Errorf("after a duplicate start: %+v", after.Actions[0])
	}
	s.report(t, addrM1, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportProgress, Progress: 50, Message: "half"}, 200)
	got = s.report(t, addrM1, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportFinish, OK: true}, 200)
	if strings.Join(got.Ready, ",") != "b" {
		t.Errorf("ready after a: %v, want b", got.Ready)
	}
	// Starting b twice over (attempt 2 before 1) is refused: 409, final.
	s.report(t, addrM1, tok, agentproto.Report{Action: "b", Attempt: 2, Kind: agentproto.ReportStart}, http.StatusConflict)
	s.report(t, addrM1, tok, agentproto.Report{Action: "b", Attempt: 1, Kind: agentproto.ReportStart}, 200)
	got = s.report(t, addrM1, tok, agentproto.Report{Action: "b", Attempt: 1, Kind: agentproto.ReportFinish, OK: true}, 200)
	if got.Status != "succeeded" || !got.Done() {
		t.Errorf("workflow after b: %+v", got)
	}
	if m := s.machine(t, "m1"); m.State != store.StateProvisioned {
		t.Errorf("machine is %s, want provisioned", m.State)
	}
	s.report(t, addrM1, tok, agentproto.Report{Action: "b", Attempt: 2, Kind: agentproto.ReportStart}, http.StatusConflict)
	// Bad bodies are 400 and change nothing.
	if code, body := s.do(t, addrM1, "POST", agentproto.PathReport, tok, map[string]any{"action": "a", "bogus": 1}); code != http.StatusBadRequest {
		t.Errorf("report with an unknown field: %d %s", code, body)
	}
}

func TestAgentCredentialRefused(t *testing.T) {
	s := newSite(t, provision.Config{})
	w := s.provisioning(t, 0)
	good := s.creds.Workflow(w)
	other := *w
	other.Nonce = "another"
	forged := s.creds.Workflow(&other) // right form, wrong nonce
	wrongKey := provision.NewCredentials([]byte("not the site's key")).Workflow(w)
	disc := s.creds.Discovery("52:54:00:00:00:99", netip.MustParseAddr(addrM1), s.discoveryExp())
	before := s.n.DB.AppliedIndex()
	for name, tok := range map[string]string{
		"none": "", "garbage": "x", "forged": forged, "wrong key": wrongKey,
		"truncated": good[:len(good)-1], "discovery for another MAC": disc[:10],
		"discovery fields changed": strings.Replace(disc, ".c612000b.", ".c612000c.", 1),
	} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"GET", agentproto.PathWorkflow, nil},
			{"POST", agentproto.PathReport, agentproto.Report{Action: "a", Attempt: 1, Kind: "start"}},
			{"POST", agentproto.PathHardware, agentproto.Hardware{MAC: "52:54:00:00:00:01"}},
		} {
			code, body := s.do(t, addrM1, req.method, req.path, tok, req.body)
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

// TestForgedReportsRefused: reports for a workflow with a valid credential
// from another address than its machine's lease (403), with no
// credential (401), and with another workflow's credential (401, or 403
// from that workflow's machine's address) are refused, counted, and change
// nothing; the machine's own agent, from its lease, is served.
func TestForgedReportsRefused(t *testing.T) {
	s := newSite(t, provision.Config{})
	w1 := s.provisioning(t, 0)
	s.putMachine(t, "m2", macM2)
	s.lease(t, addrM2, macM2)
	w2 := s.createWorkflow(t, &store.Workflow{ID: "wf2", MachineID: "m2", Template: "t", Purpose: store.PurposeProvision})
	tok1, tok2 := s.creds.Workflow(w1), s.creds.Workflow(w2)
	sig2, _, _ := strings.Cut(tok2, ".")

	start := agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportStart}
	finish := agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportFinish, OK: true}
	before := s.n.DB.AppliedIndex()
	forbidden, unauthorized := refusedCount(t, "address"), refusedCount(t, "credential")
	for name, tc := range map[string]struct {
		from, token string
		want        int
	}{
		"valid credential, unleased address":     {addrStranger, tok1, http.StatusForbidden},
		"valid credential, another machine's":    {addrM2, tok1, http.StatusForbidden},
		"valid credential, loopback":             {"127.0.0.1", tok1, http.StatusForbidden},
		"no credential, the machine's address":   {addrM1, "", http.StatusUnauthorized},
		"another workflow's signature":           {addrM1, sig2 + ".wf1", http.StatusUnauthorized},
		"another workflow's credential, from m1": {addrM1, tok2, http.StatusForbidden},
	} {
		for _, rep := range []agentproto.Report{start, finish} {
			code, body := s.do(t, tc.from, "POST", agentproto.PathReport, tc.token, rep)
			if code != tc.want {
				t.Errorf("%s: report %s = %d %s, want %d", name, rep.Kind, code, body, tc.want)
				continue
			}
			if e := errorBody(t, body); tc.want == http.StatusForbidden && !strings.Contains(e.Error.Message, "not from this address") {
				t.Errorf("%s: 403 says %q, want it to say the address is wrong", name, e.Error.Message)
			}
		}
		if code, _ := s.do(t, tc.from, "GET", agentproto.PathWorkflow, tc.token, nil); code != tc.want {
			t.Errorf("%s: GET workflow = %d, want %d", name, code, tc.want)
		}
	}
	if after := s.n.DB.AppliedIndex(); after != before {
		t.Errorf("forged reports moved the applied index from %d to %d", before, after)
	}
	for _, id := range []string{"wf1", "wf2"} {
		if w := s.storedWorkflow(t, id); w.Status() != "pending" {
			t.Errorf("%s after forged reports: %s, want pending", id, w.Status())
		}
	}
	if got := refusedCount(t, "address") - forbidden; got != 12 {
		t.Errorf("outpost_agent_refused_total{reason=address} rose by %v, want 12", got)
	}
	if got := refusedCount(t, "credential") - unauthorized; got != 6 {
		t.Errorf("outpost_agent_refused_total{reason=credential} rose by %v, want 6", got)
	}
	// The machines' own agents are served.
	s.report(t, addrM1, tok1, start, 200)
	s.report(t, addrM2, tok2, start, 200)
}

// TestNewWorkflowSupersedes: a machine's new workflow leaves the
// credential of its earlier one opening nothing, whether the new one has
// another id or the same id made again (with a new nonce).
func TestNewWorkflowSupersedes(t *testing.T) {
	s := newSite(t, provision.Config{})
	w1 := s.provisioning(t, 0)
	old := s.creds.Workflow(w1)
	s.workflow(t, addrM1, old)
	if _, err := s.n.Site.CancelWorkflow(t.Context(), "wf1", "replaced"); err != nil {
		t.Fatal(err)
	}
	w2 := s.createWorkflow(t, &store.Workflow{ID: "wf2", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision})
	before := s.n.DB.AppliedIndex()
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"GET", agentproto.PathWorkflow, nil},
		{"POST", agentproto.PathReport, agentproto.Report{Action: "a", Attempt: 1, Kind: "start"}},
	} {
		code, body := s.do(t, addrM1, req.method, req.path, old, req.body)
		if code != http.StatusUnauthorized || !strings.Contains(errorBody(t, body).Error.Message, "a newer one replaced") {
			t.Errorf("%s %s with wf1's credential after wf2: %d %s, want 401 saying it was replaced", req.method, req.path, code, body)
		}
	}
	if after := s.n.DB.AppliedIndex(); after != before {
		t.Errorf("a superseded credential moved the applied index from %d to %d", before, after)
	}
	if got := s.workflow(t, addrM1, s.creds.Workflow(w2)); got.ID != "wf2" {
		t.Errorf("wf2's credential opens %s", got.ID)
	}

	// The same id made again: the old credential opens nothing.
	if _, err := s.n.Site.CancelWorkflow(t.Context(), "wf2", "replaced"); err != nil {
		t.Fatal(err)
	}
	if err := s.n.Site.Delete(t.Context(), sitepkg.Workflows, "wf1", 0); err != nil {
		t.Fatal(err)
	}
	again := s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision})
	if again.Nonce == w1.Nonce {
		t.Fatalf("wf1 made again has the nonce of the first: %q", again.Nonce)
	}
	if code, body := s.do(t, addrM1, "GET", agentproto.PathWorkflow, old, nil); code != http.StatusUnauthorized {
		t.Errorf("the first wf1's credential on wf1 made again: %d %s, want 401", code, body)
	}
	s.workflow(t, addrM1, s.creds.Workflow(again))
}

func TestDiscovery(t *testing.T) {
	s := newSite(t, provision.Config{})
	const mac, addr = "52:54:00:aa:bb:cc", "198.18.0.120"
	s.lease(t, addr, mac)
	tok := s.creds.Discovery(mac, netip.MustParseAddr(addr), s.discoveryExp())
	if code, body := s.do(t, addr, "GET", agentproto.PathWorkflow, tok, nil); code != http.StatusNotFound {
		t.Errorf("workflow before discovery: %d %s, want 404", code, body)
	}
	hw := agentproto.Hardware{MAC: mac, CPUs: 4, MemoryBytes: 8 << 30, Vendor: "QEMU",
		Disks: []agentproto.Disk{{Name: "vda", SizeBytes: 1 << 30}},
		NICs:  []agentproto.NIC{{Name: "eth0", MAC: mac, Driver: "virtio_net"}, {Name: "eth1", MAC: "52:54:00:aa:bb:cd"}}}
	// Another MAC than the credential's is refused.
	bad := hw
	bad.MAC = "52:54:00:aa:bb:cd"
	if code, _ := s.do(t, addr, "POST", agentproto.PathHardware, tok, bad); code != http.StatusBadRequest {
		t.Errorf("hardware for another MAC: %d, want 400", code)
	}
	// From another address than the one it was given to: 403.
	if code, body := s.do(t, addrStranger, "POST", agentproto.PathHardware, tok, hw); code != http.StatusForbidden {
		t.Errorf("hardware from another address: %d %s, want 403", code, body)
	}
	code, body := s.do(t, addr, "POST", agentproto.PathHardware, tok, hw)
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
	code, body = s.do(t, addr, "POST", agentproto.PathHardware, tok, hw)
	json.Unmarshal(body, &ack)
	if code != 200 || ack.Created || s.machine(t, ack.MachineID).Hardware.CPUs != 8 {
		t.Errorf("second report: %d %s", code, body)
	}
	// Once a workflow exists for the machine, the discovery credential
	// opens it, from its address alone.
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}})
	s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: ack.MachineID, Template: "t", Purpose: store.PurposeProvision})
	if w := s.workflow(t, addr, tok); w.ID != "wf1" {
		t.Errorf("workflow through the discovery credential: %+v", w)
	}
	if code, body := s.do(t, addrStranger, "GET", agentproto.PathWorkflow, tok, nil); code != http.StatusForbidden {
		t.Errorf("the discovery credential from another address: %d %s, want 403", code, body)
	}
}

// TestDiscoveryCredentialExpires: a discovery credential fetched while a
// MAC was unknown stops opening anything at its expiry: the workflow an
// operator creates later for that machine refuses it (401, saying so) and
// no report reaches it. A credential of the earlier format, an HMAC of the
// MAC alone that never expired, is refused as outdated.
func TestDiscoveryCredentialExpires(t *testing.T) {
	s := newSite(t, provision.Config{})
	const mac, addr = "52:54:00:aa:bb:cc", "198.18.0.120"
	s.lease(t, addr, mac)
	tok := s.creds.Discovery(mac, netip.MustParseAddr(addr), s.discoveryExp())
	if code, body := s.do(t, addr, "POST", agentproto.PathHardware, tok, agentproto.Hardware{MAC: mac, NICs: []agentproto.NIC{}}); code != 200 {
		t.Fatalf("hardware: %d %s", code, body)
	}
	s.clock.add(time.Hour)
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{
		{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}})
	s.createWorkflow(t, &store.Workflow{ID: "later", MachineID: "m-525400aabbcc", Template: "t", Purpose: store.PurposeProvision})
	before, expired := s.n.DB.AppliedIndex(), refusedCount(t, "expired")
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"GET", agentproto.PathWorkflow, nil},
		{"POST", agentproto.PathReport, agentproto.Report{Action: "a", Attempt: 1, Kind: "start"}},
		{"POST", agentproto.PathHardware, agentproto.Hardware{MAC: mac, NICs: []agentproto.NIC{}}},
	} {
		code, body := s.do(t, addr, req.method, req.path, tok, req.body)
		if code != http.StatusUnauthorized || !strings.Contains(errorBody(t, body).Error.Message, "expired") {
			t.Errorf("%s %s with an expired discovery credential: %d %s, want 401 saying it expired", req.method, req.path, code, body)
		}
	}
	if after := s.n.DB.AppliedIndex(); after != before {
		t.Errorf("an expired credential moved the applied index from %d to %d", before, after)
	}
	if got := refusedCount(t, "expired") - expired; got != 3 {
		t.Errorf("outpost_agent_refused_total{reason=expired} rose by %v, want 3", got)
	}
	if w := s.storedWorkflow(t, "later"); w.Status() != "pending" {
		t.Errorf("the later workflow is %s, want pending", w.Status())
	}

	old := provision.OldDiscoveryCredential(s.n.Key.Derive("outpost agent credentials v1"), mac)
	code, body := s.do(t, addr, "GET", agentproto.PathWorkflow, old, nil)
	if code != http.StatusUnauthorized || !strings.Contains(errorBody(t, body).Error.Message, "earlier release") {
		t.Errorf("a discovery credential of the earlier format: %d %s, want 401 saying it is outdated", code, body)
	}
}

// TestDiscoveryRateLimited: machines created by discovery are limited per
// subnet: past the burst, a report that would create one gets 429 with
// Retry-After, counted, and creates nothing; reports on known machines and
// from another subnet go through, and the limit refills with time.
func TestDiscoveryRateLimited(t *testing.T) {
	s := newSite(t, provision.Config{DiscoveryBurst: 3, DiscoveryEvery: time.Minute})
	report := func(mac, from string) (int, []byte, http.Header) {
		tok := s.creds.Discovery(mac, netip.MustParseAddr(from), s.discoveryExp())
		req := httptest.NewRequestWithContext(t.Context(), "POST", agentproto.PathHardware,
			strings.NewReader(`{"mac":"`+mac+`","cpus":1,"memory_bytes":1,"nics":[]}`))
		req.RemoteAddr = from + ":40000"
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, req)
		return rec.Code, rec.Body.Bytes(), rec.Header()
	}
	for i := range 3 {
		mac := "52:54:00:ee:00:0" + string(rune('1'+i))
		if code, body, _ := report(mac, "198.18.0.1"+string(rune('1'+i))+"0"); code != 200 {
			t.Fatalf("machine %d of the burst: %d %s", i+1, code, body)
		}
	}
	limited := refusedCount(t, "rate_limited")
	before := s.n.DB.AppliedIndex()
	code, body, h := report("52:54:00:ee:00:04", "198.18.0.140")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") != "60" || !strings.Contains(errorBody(t, body).Error.Message, "subnet lab") {
		t.Errorf("a fourth new machine in subnet lab: %d %s (Retry-After %q), want 429 naming the subnet, Retry-After 60", code, body, h.Get("Retry-After"))
	}
	if after := s.n.DB.AppliedIndex(); after != before {
		t.Errorf("a limited report moved the applied index from %d to %d", before, after)
	}
	if got := refusedCount(t, "rate_limited") - limited; got != 1 {
		t.Errorf("outpost_agent_refused_total{reason=rate_limited} rose by %v, want 1", got)
	}
	if code, body, _ := report("52:54:00:ee:00:01", "198.18.0.110"); code != 200 {
		t.Errorf("a report on a known machine: %d %s, want 200", code, body)
	}
	if code, body, _ := report("52:54:00:ee:00:05", "198.19.5.5"); code != 200 {
		t.Errorf("a new machine in another subnet: %d %s, want 200", code, body)
	}
	s.clock.add(time.Minute)
	if code, body, _ := report("52:54:00:ee:00:04", "198.18.0.140"); code != 200 {
		t.Errorf("a new machine in lab after a minute: %d %s, want 200", code, body)
	}
}

// TestFirstClaim: where the appliance leases nothing, the first address
// to use a workflow's credential claims it, recorded in the log with an
// event; others are refused from then on, and the claimant is served. A
// discovery credential opening its machine's new workflow claims it too.
func TestFirstClaim(t *testing.T) {
	s := newSite(t, provision.Config{Binding: provision.BindFirstClaim})
	s.putMachine(t, "m1", macM1)
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}})
	w := s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision})
	tok := s.creds.Workflow(w)
	s.workflow(t, "198.18.7.20", tok)
	if got := s.storedWorkflow(t, "wf1").BootAddr; got != "198.18.7.20" {
		t.Fatalf("wf1 is bound to %q, want the first claimant 198.18.7.20", got)
	}
	before := s.n.DB.AppliedIndex()
	if code, body := s.do(t, "198.18.7.21", "POST", agentproto.PathReport, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: "start"}); code != http.StatusForbidden {
		t.Errorf("a report from a second address: %d %s, want 403", code, body)
	}
	if after := s.n.DB.AppliedIndex(); after != before {
		t.Errorf("a refused claim moved the applied index from %d to %d", before, after)
	}
	s.report(t, "198.18.7.20", tok, agentproto.Report{Action: "a", Attempt: 1, Kind: "start"}, 200)

	const mac = "52:54:00:aa:bb:cc"
	disc := s.creds.Discovery(mac, netip.MustParseAddr("198.18.7.30"), s.discoveryExp())
	if code, body := s.do(t, "198.18.7.30", "POST", agentproto.PathHardware, disc, agentproto.Hardware{MAC: mac, NICs: []agentproto.NIC{}}); code != 200 {
		t.Fatalf("hardware: %d %s", code, body)
	}
	s.createWorkflow(t, &store.Workflow{ID: "wf-d", MachineID: "m-525400aabbcc", Template: "t", Purpose: store.PurposeProvision})
	s.workflow(t, "198.18.7.30", disc)
	if got := s.storedWorkflow(t, "wf-d").BootAddr; got != "198.18.7.30" {
		t.Errorf("wf-d is bound to %q, want the discovery credential's address", got)
	}
	var events []string
	s.n.DB.View(func(tx *store.Tx) error {
		all, err := tx.EventsSince(0, 1000)
		for _, e := range all {
			if e.Kind == "workflow.bound" {
				events = append(events, e.Fields["workflow"]+"@"+e.Fields["addr"])
			}
		}
		return err
	})
	if strings.Join(events, " ") != "wf1@198.18.7.20 wf-d@198.18.7.30" {
		t.Errorf("workflow.bound events: %q", events)
	}
}

// racingSite lets another address claim each workflow first, as a
// request from another address that won the race between this request's
// read and its claim would.
type racingSite struct {
	provision.Site
	first netip.Addr
}

func (r racingSite) BindWorkflow(ctx context.Context, id string, addr netip.Addr) (*store.Workflow, error) {
	if _, err := r.Site.BindWorkflow(ctx, id, r.first); err != nil {
		return nil, err
	}
	return r.Site.BindWorkflow(ctx, id, addr)
}

// TestFirstClaimLost: a request whose claim lost to another address's is
// refused, and changes nothing more.
func TestFirstClaimLost(t *testing.T) {
	s := newSite(t, provision.Config{})
	s.handler = provision.New(provision.Config{Site: racingSite{s.n.Site, netip.MustParseAddr("198.18.7.99")}, Store: s.n.DB,
		Credentials: s.creds, Binding: provision.BindFirstClaim, Now: s.clock.now}).Handler()
	s.putMachine(t, "m1", macM1)
	s.template(t, &store.Template{Name: "t", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}})
	w := s.createWorkflow(t, &store.Workflow{ID: "wf1", MachineID: "m1", Template: "t", Purpose: store.PurposeProvision})
	code, body := s.do(t, "198.18.7.20", "POST", agentproto.PathReport, s.creds.Workflow(w), agentproto.Report{Action: "a", Attempt: 1, Kind: "start"})
	if code != http.StatusForbidden {
		t.Errorf("a report whose claim lost: %d %s, want 403", code, body)
	}
	if got := s.storedWorkflow(t, "wf1"); got.BootAddr != "198.18.7.99" || got.Status() != "pending" {
		t.Errorf("wf1 is bound to %q and %s, want bound to the winner and pending", got.BootAddr, got.Status())
	}
}

func TestTimerTimesOut(t *testing.T) {
	s := newSite(t, provision.Config{})
	w := s.provisioning(t, time.Second)
	tok := s.creds.Workflow(w)
	s.report(t, addrM1, tok, agentproto.Report{Action: "a", Attempt: 1, Kind: agentproto.ReportStart}, 200)
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
