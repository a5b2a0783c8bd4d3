package syncclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/central/testcentral"
	"github.com/outposthq/outpost/internal/testwait"
)

// TestFleetModelIsExact: central's fleet model is exact. A real site
// (an appliance node and its state machine) goes through a realistic
// history, synced to a real central by this client: machines created,
// discovered and enrolled, provisioned, failed, deprovisioned, deleted
// and created again, orders placed at the site and at central (one
// waiting for its image, then started), power orders, a machine put and
// deleted by central. Once central has stored every event and the site
// has applied every revision, every machine central derived (GET
// /v1/fleet/machines) is the site's own: its state and reason, power,
// hostname, MACs, tags, workflow (status, actions done of total) and
// last order (key and status); and central has no machine the site has
// not.
//
// The site's events reach central in batches, across connections: the
// first part of the history is recorded before the client runs, and the
// client is stopped and started again in the middle.
func TestFleetModelIsExact(t *testing.T) {
	c := testcentral.Start(t)
	api := &centralAPI{t: t, url: c.URL, token: c.Token}
	var created struct {
		Credential string `json:"credential"`
	}
	api.do("POST", "/v1/sites", map[string]any{"id": "ams2", "labels": map[string]string{"region": "eu"}}, &created)
	n := apptest.Start(t)
	cred := filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(cred, []byte(created.Credential), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &history{t: t, p: n.Site.Proposer, db: n.DB, ctx: t.Context()}

	h.setUp()
	h.firstPart()
	stop := runClient(t, n, c.URL, cred)
	waitSynced(t, api, n)
	stop()
	h.secondPart()
	runClient(t, n, c.URL, cred)

	// Orders and machines from central, delivered while the site is
	// connected.
	api.do("PUT", "/v1/sites/ams2/orders/c1", map[string]any{"action": "provision", "machine_id": "m4", "image": "ubuntu"}, nil)
	api.do("PUT", "/v1/sites/ams2/orders/c2", map[string]any{"action": "power_off", "machine_id": "m5"}, nil)
	api.do("PUT", "/v1/sites/ams2/machines/m6", map[string]any{"hostname": "m6.example.net", "tags": []string{"central"},
		"interfaces": []map[string]any{{"mac": "02:00:00:00:06:01"}}, "bmc": map[string]any{"address": "10.0.0.6:623"}}, nil)
	api.do("PUT", "/v1/sites/ams2/machines/m7", map[string]any{"hostname": "m7.example.net",
		"interfaces": []map[string]any{{"mac": "02:00:00:00:07:01"}}}, nil)
	waitSynced(t, api, n)
	compareFleet(t, api, n) // c1 waits for its image, c2 runs

	h.thirdPart()
	api.do("DELETE", "/v1/sites/ams2/machines/m7", nil, nil)
	api.do("PUT", "/v1/sites/ams2/orders/c3", map[string]any{"action": "power_on", "machine_id": "m-nope"}, nil) // refused at the site
	waitSynced(t, api, n)
	compareFleet(t, api, n)
}

// history drives the site through its proposer, as its edges do.
type history struct {
	t   *testing.T
	p   *site.Proposer
	db  *store.DB
	ctx context.Context
}

func (h *history) ok(what string, err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatalf("%s: %v", what, err)
	}
}

// The images' digests: debian's is held from the start, ubuntu's only
// once the third part records it.
var (
	debianSHA = strings.Repeat("ab", 32)
	ubuntuSHA = strings.Repeat("cd", 32)
)

func fleetMachine(id string, macs ...string) *store.Machine {
	m := &store.Machine{ID: id, Hostname: id + ".example.net", Tags: []string{"rack-1", "gpu"},
		BMC: &store.BMC{Address: "10.0.0.9:623", Driver: "ipmi", Username: "admin"}}
	for i, mac := range macs {
		m.Interfaces = append(m.Interfaces, store.Interface{MAC: mac, Boot: i == 0})
	}
	return m
}

func (h *history) setUp() {
	_, err := h.p.PutSubnet(h.ctx, &store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Gateway: "198.18.0.1",
		Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.200"}}}, 0)
	h.ok("subnet", err)
	_, err = h.p.PutTemplate(h.ctx, &store.Template{Name: site.DefaultProvisionTemplate, Actions: []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}},
		{Name: "write", Type: "image.write", Args: map[string]string{"device": "/dev/sda", "image": "{{ .image }}"}, Needs: []string{"wipe"}},
		{Name: "reboot", Type: "reboot", Needs: []string{"write"}},
	}}, 0)
	h.ok("install template", err)
	_, err = h.p.PutTemplate(h.ctx, &store.Template{Name: site.DefaultDeprovisionTemplate, Actions: []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}}}}, 0)
	h.ok("wipe template", err)
	for name, sha := range map[string]string{"debian": debianSHA, "ubuntu": ubuntuSHA} {
		_, err = h.p.PutImage(h.ctx, &store.Image{Name: name, Type: store.ImageOS, Format: "raw.zst", Size: 1 << 20, SHA256: sha}, 0)
		h.ok("image "+name, err)
	}
	h.ok("debian held", h.p.RecordArtifact(h.ctx, "n1", debianSHA, 1<<20))
	for i := 1; i <= 5; i++ {
		_, err := h.p.PutMachine(h.ctx, fleetMachine(fmt.Sprintf("m%d", i), fmt.Sprintf("02:00:00:00:00:%02x", i)), 0)
		h.ok("machine", err)
	}
}

// firstPart: discovery and enrolment, a provision that succeeds (m1)
// and one that fails (m2), a power order (m3).
func (h *history) firstPart() {
	res, err := h.p.Discover(h.ctx, site.Hardware{MAC: "02:00:00:00:0d:01", CPUs: 8, MemoryBytes: 16 << 30,
		NICs: []site.NIC{{Name: "eth0", MAC: "02:00:00:00:0d:01"}, {Name: "eth1", MAC: "02:00:00:00:0d:02"}}})
	h.ok("discover", err)
	found := h.machine(res.MachineID)
	found.Hostname, found.State = "found-1", store.StateReady
	_, err = h.p.PutMachine(h.ctx, found, found.Version)
	h.ok("enroll", err)
	_, err = h.p.Discover(h.ctx, site.Hardware{MAC: "02:00:00:00:0e:01", CPUs: 2}) // stays discovered
	h.ok("discover", err)

	h.order("o1", store.OrderProvision, "m1", "debian")
	h.jobs("o1", "on")
	h.actions("o1", map[string]bool{"wipe": true, "write": true, "reboot": true})

	h.order("o2", store.OrderProvision, "m2", "debian")
	h.jobs("o2", "on")
	h.report("o2", site.Report{Action: "wipe", Attempt: 1, Kind: site.ReportStart})
	h.report("o2", site.Report{Action: "wipe", Attempt: 1, Kind: site.ReportFinish, OK: true})
	h.report("o2", site.Report{Action: "write", Attempt: 1, Kind: site.ReportStart})
	h.report("o2", site.Report{Action: "write", Attempt: 1, Kind: site.ReportProgress, Progress: 40})
	h.report("o2", site.Report{Action: "write", Attempt: 1, Kind: site.ReportFinish, OK: false, Message: "checksum mismatch"})

	h.order("o3", store.OrderPowerOn, "m3", "")
	h.jobs("o3", "on")
}

// secondPart, while the client is stopped: a deprovision (m1), a
// provision cancelled mid-way (m3), a machine deleted and created again
// (m2), one deleted for good (the still-discovered one), a power reading.
func (h *history) secondPart() {
	h.order("d1", store.OrderDeprovision, "m1", "")
	h.jobs("d1", "on")
	h.actions("d1", map[string]bool{"wipe": true})
	h.runJob("d1-off", site.JobResult{OK: true, Power: "off"})

	h.order("o4", store.OrderProvision, "m3", "debian")
	h.jobs("o4", "on")
	h.report("o4", site.Report{Action: "wipe", Attempt: 1, Kind: site.ReportStart})
	_, err := h.p.CancelWorkflow(h.ctx, "o4", "operator changed their mind")
	h.ok("cancel", err)

	h.ok("delete m2", h.p.Delete(h.ctx, site.Machines, "m2", 0))
	_, err = h.p.PutMachine(h.ctx, fleetMachine("m2", "02:00:00:00:00:22"), 0)
	h.ok("m2 again", err)
	h.ok("delete discovered", h.p.Delete(h.ctx, site.Machines, "m-020000000e01", 0))
	m5 := h.machine("m5")
	h.ok("power reading", h.p.SetPower(h.ctx, "m5", "on", m5.Version))
}

// thirdPart: central's order c1 (waiting for ubuntu) starts once the
// image is at the site and succeeds; c2 (power-off) runs; a site put
// changes m4's tags mid-provision.
func (h *history) thirdPart() {
	h.runJob("c2-power", site.JobResult{OK: true, Power: "off"})
	h.ok("ubuntu held", h.p.RecordArtifact(h.ctx, "n1", ubuntuSHA, 1<<20))
	h.jobs("c1", "on")
	m4 := h.machine("m4")
	m4.Tags = []string{"rack-9"}
	_, err := h.p.PutMachine(h.ctx, m4, 0)
	h.ok("retag m4", err)
	h.actions("c1", map[string]bool{"wipe": true, "write": true, "reboot": true})
}

func (h *history) machine(id string) *store.Machine {
	h.t.Helper()
	var m *store.Machine
	h.ok("read "+id, h.db.View(func(tx *store.Tx) (err error) { m, err = store.Get[store.Machine](tx, id); return err }))
	return m
}

func (h *history) order(id, action, machine, image string) {
	h.t.Helper()
	_, err := h.p.PlaceOrder(h.ctx, &store.Order{ID: id, Action: action, MachineID: machine, Image: image})
	h.ok("order "+id, err)
}

// jobs runs a provision's or deprovision's PXE and power-cycle jobs.
func (h *history) jobs(order, power string) {
	h.t.Helper()
	if strings.HasPrefix(order, "o3") {
		h.runJob(order+"-power", site.JobResult{OK: true, Power: power})
		return
	}
	h.runJob(order+"-pxe", site.JobResult{OK: true})
	h.runJob(order+"-cycle", site.JobResult{OK: true, Power: power})
}

func (h *history) runJob(id string, r site.JobResult) {
	h.t.Helper()
	h.ok("start "+id, h.p.StartJob(h.ctx, id, 1, time.Now().Add(time.Minute)))
	h.ok("finish "+id, h.p.FinishJob(h.ctx, id, 1, r))
}

// actions runs the workflow's actions in order, each ok or not.
func (h *history) actions(wf string, ok map[string]bool) {
	h.t.Helper()
	for _, a := range []string{"wipe", "write", "reboot"} {
		res, present := ok[a]
		if !present {
			continue
		}
		h.report(wf, site.Report{Action: a, Attempt: 1, Kind: site.ReportStart})
		h.report(wf, site.Report{Action: a, Attempt: 1, Kind: site.ReportFinish, OK: res})
	}
}

func (h *history) report(wf string, r site.Report) {
	h.t.Helper()
	_, err := h.p.Report(h.ctx, wf, r)
	h.ok(fmt.Sprintf("report %s %s %s", wf, r.Action, r.Kind), err)
}

// runClient runs a sync client of the node to central until the test
// ends; stop stops it now.
func runClient(t *testing.T, n *apptest.Node, url, cred string) (stop func()) {
	t.Helper()
	_, stop = start(t, Config{Node: n.Site, Store: n.DB, URL: url, Insecure: true, Site: "ams2", CredentialFile: cred,
		Log:        slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, LongBackoff: time.Second})
	return stop
}

// waitSynced waits until central has stored every event of the site and
// the site has applied (and central heard it acknowledge) every
// revision.
func waitSynced(t *testing.T, api *centralAPI, n *apptest.Node) {
	t.Helper()
	testwait.For(t, "central and the site in sync", 30*time.Second, func() bool {
		var s struct {
			Sync struct {
				Latest  uint64 `json:"latest_revision"`
				Acked   uint64 `json:"acked_revision"`
				Stored  uint64 `json:"stored_seq"`
				Applied uint64 `json:"applied_revision"`
			} `json:"sync"`
		}
		api.do("GET", "/v1/sites/ams2", nil, &s)
		var st store.SyncState
		_ = n.DB.View(func(tx *store.Tx) error { st = tx.SyncState(); return nil })
		return s.Sync.Acked == s.Sync.Latest && st.AppliedRevision == s.Sync.Latest && s.Sync.Stored == st.LastSeq
	})
}

// fleetView is what the test compares of a machine.
type fleetView struct {
	State, Reason, Power, Hostname string
	MACs, Tags                     []string
	Workflow                       string // id status done/total
	Order                          string // key status
}

// compareFleet compares central's fleet with the site's machines. The
// site's record at central (its stored sequence, which waitSynced read)
// commits a moment before the fleet's index takes the batch's records,
// so the comparison is tried until it holds, and its difference shown
// if it never does.
func compareFleet(t *testing.T, api *centralAPI, n *apptest.Node) {
	t.Helper()
	want := siteFleet(t, n)
	var diff string
	defer func() {
		if diff != "" {
			t.Logf("central's fleet differs from the site's machines (-site +central):\n%s", diff)
		}
	}()
	testwait.For(t, "central's fleet to be the site's machines", 10*time.Second, func() bool {
		diff = cmp.Diff(want, centralFleet(t, api))
		return diff == ""
	})
	if len(want) < 7 {
		t.Errorf("the history left %d machines; it should exercise more", len(want))
	}
}

// centralFleet is central's view of the site's machines.
func centralFleet(t *testing.T, api *centralAPI) map[string]fleetView {
	t.Helper()
	var page struct {
		Machines []struct {
			Site, ID, State, Reason, Power, Hostname string
			MACs                                     []string `json:"macs"`
			Tags                                     []string
			Workflow                                 *struct {
				ID, Status  string
				Done, Total int
			}
			LastOrder *struct{ Key, Status string } `json:"last_order"`
		}
		Total int
	}
	api.do("GET", "/v1/fleet/machines?limit=1000&q=site:ams2", nil, &page)
	got := map[string]fleetView{}
	for _, m := range page.Machines {
		v := fleetView{State: m.State, Reason: m.Reason, Power: m.Power, Hostname: m.Hostname, MACs: m.MACs, Tags: m.Tags}
		if w := m.Workflow; w != nil {
			v.Workflow = fmt.Sprintf("%s %s %d/%d", w.ID, w.Status, w.Done, w.Total)
		}
		if o := m.LastOrder; o != nil {
			v.Order = o.Key + " " + o.Status
		}
		got[m.ID] = v
	}
	return got
}

// siteFleet is the site's own view of its machines: each machine's
// record, its current workflow and its last order (the last created,
// by the order of the site's order events).
func siteFleet(t *testing.T, n *apptest.Node) map[string]fleetView {
	t.Helper()
	out := map[string]fleetView{}
	err := n.DB.View(func(tx *store.Tx) error {
		machines, err := store.List[store.Machine](tx)
		if err != nil {
			return err
		}
		last := lastOrders(t, tx)
		for _, m := range machines {
			v := fleetView{State: string(m.State), Reason: m.Reason, Power: m.Power, Hostname: m.Hostname, Tags: m.Tags}
			for _, nic := range m.Interfaces {
				v.MACs = append(v.MACs, nic.MAC)
			}
			if w, err := store.Get[store.Workflow](tx, m.Workflow); err == nil && m.Workflow != "" {
				done := 0
				for _, a := range w.State.Actions {
					if a.Status.Final() {
						done++
					}
				}
				v.Workflow = fmt.Sprintf("%s %s %d/%d", w.ID, w.State.Status, done, len(w.State.Actions))
			}
			if key := last[m.ID]; key != "" {
				o, err := store.Get[store.Order](tx, key)
				if err != nil {
					return err
				}
				v.Order = key + " " + o.State
			}
			out[m.ID] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lastOrders is each machine's last order: the last one whose creation
// (order.created or order.waiting) the site recorded, among those it
// still has; a machine deleted since has none of its earlier life.
func lastOrders(t *testing.T, tx *store.Tx) map[string]string {
	events, err := tx.EventsSince(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range events {
		switch e.Kind {
		case "order.created", "order.waiting":
			out[e.MachineID] = e.Fields["order"]
		case "machine.deleted", "machine.created":
			delete(out, e.MachineID)
		case "machine.discovered":
			if e.Fields["created"] == "true" {
				delete(out, e.MachineID)
			}
		}
	}
	return out
}

// centralAPI calls central's API with the admin token.
type centralAPI struct {
	t          *testing.T
	url, token string
}

func (a *centralAPI) do(method, path string, body, out any) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(a.t.Context(), method, a.url+path, r)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		a.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
}
