package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// startCentral starts centrald on a free loopback port.
func startCentral(t *testing.T) *labsite.Central {
	t.Helper()
	return labsite.StartCentral(t, centrald(t), fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-heartbeat", "1s", "-log-level", "debug")
}

// syncedSite is a site (one applianced on loopback) syncing with central
// through a fault proxy.
type syncedSite struct {
	c     *cluster
	n     *node
	proxy *lab.FaultProxy
}

// startSyncedSite starts site id (one applianced on loopback, with more
// flags args) syncing with cen through a fault proxy: over HTTPS if cen
// serves it (startCentralTLS), the proxy passing TLS through.
func startSyncedSite(t *testing.T, cen *labsite.Central, id string, args ...string) *syncedSite {
	t.Helper()
	credFile := cen.NewSite(id)
	proxy := lab.StartFaultProxy(t, "127.0.0.1:0", cen.Addr)
	c := newCluster(t)
	n := c.addNode("n1", "")
	scheme, _, _ := strings.Cut(cen.URL, "://")
	n.args = append(n.args, cen.SyncArgs(scheme+"://"+proxy.Addr, id, credFile)...)
	n.args = append(n.args, args...)
	c.start(n)
	c.token = c.waitAdminToken(n)
	c.waitFormed(n)
	return &syncedSite{c: c, n: n, proxy: proxy}
}

// lastSeq is the site's newest event.
func (s *syncedSite) lastSeq(t *testing.T) uint64 {
	t.Helper()
	var page struct {
		LastSeq uint64 `json:"last_seq"`
	}
	if err := s.c.get(s.n, "/v1/events?limit=1", &page); err != nil {
		t.Fatal(err)
	}
	return page.LastSeq
}

// TestSyncEventsExactlyOnce: 10,000 events recorded at a site while its
// link to central is down, and an order placed at central meanwhile,
// cross once the link heals, through a proxy that keeps cutting the
// connections in the middle of messages: central has every event exactly
// once and in order, and the site applied the order exactly once.
func TestSyncEventsExactlyOnce(t *testing.T) {
	cen := startCentral(t)
	s := startSyncedSite(t, cen, "lab")

	// The site connects; then the link goes down.
	waitConnected(t, cen, "lab", true)
	s.proxy.SetMode(lab.Refuse)

	const n = 10000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.c.send(s.n, "POST", "/v1/events", store.Event{Kind: "test.offline", Message: fmt.Sprintf("offline event %05d", i)})
		}()
	}
	// Desired state placed at central while the site is away.
	bmcMachine := map[string]any{"id": "m1", "interfaces": []map[string]any{{"mac": "02:00:00:00:5e:01"}},
		"bmc": map[string]any{"address": "127.0.0.1:9", "driver": "ipmi", "username": "admin", "password": "never-shown-17"}}
	if err := cen.Do("PUT", "/v1/sites/lab/machines/m1", bmcMachine, nil); err != nil {
		t.Fatal(err)
	}
	if err := cen.Do("PUT", "/v1/sites/lab/orders/on1", map[string]any{"action": "power_on", "machine_id": "m1"}, nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	total := s.lastSeq(t)
	t.Logf("%d events at the site; healing the link, cut every 64 KiB for a while", total)

	s.proxy.CutAfter(64 << 10)
	s.proxy.SetMode(lab.Pass)
	time.Sleep(5 * time.Second)
	s.proxy.CutAfter(0)

	cen.WaitStored(t.Context(), "lab", total, 3*time.Minute)
	got := cen.Events("lab")
	offline := 0
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Data.Seq != e.Seq {
			t.Fatalf("central's event %d has seq %d (site seq %d): not dense, or out of order", i, e.Seq, e.Data.Seq)
		}
		if e.Data.Kind == "test.offline" {
			offline++
		}
	}
	if offline != n {
		t.Errorf("central has %d of the %d offline events", offline, n)
	}

	// The order placed while the link was down was applied once.
	var orders []store.Order
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		var page struct {
			Items []store.Order `json:"items"`
		}
		if err := s.c.get(s.n, "/v1/orders", &page); err != nil {
			return err
		}
		orders = page.Items
		if len(orders) == 0 {
			return fmt.Errorf("no order at the site yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != 1 || orders[0].ID != "on1" {
		t.Errorf("orders at the site: %+v, want on1 once", orders)
	}
	created := 0
	for _, e := range cen.Events("lab") {
		if e.Data.Kind == "order.created" && e.Data.Fields["order"] == "on1" {
			created++
		}
	}
	if created != 1 {
		t.Errorf("order on1 was created %d times at the site (by central's events), want once", created)
	}
	for _, f := range []string{s.n.proc.stderr, s.n.proc.stdout, cen.Proc.Stderr, cen.Proc.Stdout} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("never-shown-17")) {
			t.Errorf("the BMC password is in %s", f)
		}
	}
}

// waitConnected waits until central says site is (or is not) connected.
func waitConnected(t *testing.T, cen *labsite.Central, site string, want bool) {
	t.Helper()
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		var s struct {
			Sync struct {
				Connected bool `json:"connected"`
			} `json:"sync"`
		}
		if err := cen.Do("GET", "/v1/sites/"+site, nil, &s); err != nil {
			return err
		}
		if s.Sync.Connected != want {
			return fmt.Errorf("site %s connected=%v", site, s.Sync.Connected)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSyncSurvivesRestarts: while a 3-node site records events, central
// is killed and started again, and then the site's Raft leader is killed
// (another node takes over the sync): central ends with every event of
// the site exactly once and in order.
func TestSyncSurvivesRestarts(t *testing.T) {
	cen := startCentral(t)
	credFile := cen.NewSite("ha")
	c := newCluster(t)
	syncArgs := cen.SyncArgs(cen.URL, "ha", credFile)
	n1 := c.addNode("n1", "")
	n1.args = append(n1.args, syncArgs...)
	c.start(n1)
	c.token = c.waitAdminToken(n1)
	for i := 2; i <= 3; i++ {
		n := c.addNode(fmt.Sprintf("n%d", i), n1.apiURL)
		n.args = append(n.args, syncArgs...)
		c.start(n)
	}
	c.waitFormed(c.nodes...)
	waitConnected(t, cen, "ha", true)

	// Writers record events through the running nodes until told to
	// stop. A write whose node dies under it may or may not have been
	// recorded: it is not retried, and not counted as acknowledged.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := map[string]bool{}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := c.nodes[i%len(c.nodes)]
				if !n.running() {
					continue
				}
				msg := fmt.Sprintf("w%d-%d", w, i)
				code, _, err := c.do(t.Context(), n, "POST", "/v1/events", store.Event{Kind: "test.sync", Message: msg})
				if err == nil && code == http.StatusCreated {
					mu.Lock()
					acked[msg] = true
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(3 * time.Second)
	t.Log("killing central and starting it again")
	cen.Restart()
	time.Sleep(3 * time.Second)
	leader := c.node(c.waitFormed(c.nodes...))
	t.Logf("killing the site's leader %s", leader.id)
	c.kill(leader)
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	var alive *node
	for _, n := range c.nodes {
		if n.running() {
			alive = n
		}
	}
	var siteEvents []store.Event
	for since := uint64(0); ; {
		var page struct {
			Events []store.Event `json:"events"`
		}
		if err := c.get(alive, fmt.Sprintf("/v1/events?since=%d&limit=1000&consistent=true", since), &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 0 {
			break
		}
		siteEvents = append(siteEvents, page.Events...)
		since = page.Events[len(page.Events)-1].Seq
	}
	last := uint64(len(siteEvents))
	t.Logf("%d events acknowledged to the writers; the site has %d", len(acked), last)

	cen.WaitStored(t.Context(), "ha", last, 3*time.Minute)
	// Central holds the site's events, each once, in the site's order,
	// as the site recorded them; every acknowledged write among them.
	got := cen.Events("ha")
	if uint64(len(got)) < last {
		t.Fatalf("central has %d events, the site %d", len(got), last)
	}
	for i, e := range siteEvents {
		g := got[i]
		if g.Seq != e.Seq || g.Data.Seq != e.Seq || g.Data.Kind != e.Kind || g.Data.Message != e.Message {
			t.Fatalf("central's event %d is %d %s %q, the site's is %d %s %q", i, g.Seq, g.Data.Kind, g.Data.Message, e.Seq, e.Kind, e.Message)
		}
		delete(acked, e.Message)
	}
	if len(acked) > 0 {
		t.Errorf("%d acknowledged events are not at central", len(acked))
	}
}

// TestSyncWrongCredential: a site with a wrong credential is refused with
// a clear error, says so in its log, and changes nothing at central.
func TestSyncWrongCredential(t *testing.T) {
	cen := startCentral(t)
	if err := cen.Do("POST", "/v1/sites", map[string]string{"id": "lab", "name": "lab"}, nil); err != nil {
		t.Fatal(err)
	}
	credFile := filepath.Join(t.TempDir(), "site.credential")
	const wrong = "not-the-credential-4f1e"
	if err := os.WriteFile(credFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	n := c.addNode("n1", "")
	n.args = append(n.args, cen.SyncArgs(cen.URL, "lab", credFile)...)
	c.start(n)
	c.token = c.waitAdminToken(n)
	c.waitFormed(n)
	c.send(n, "POST", "/v1/events", store.Event{Kind: "test.local", Message: "recorded at the site"})

	// The site says why it cannot sync.
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		b, _ := os.ReadFile(n.proc.stderr)
		if !strings.Contains(strings.ToLower(string(b)), "unauthorized") {
			return fmt.Errorf("the site's log does not say it was refused yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var site struct {
		Sync struct {
			Connected bool   `json:"connected"`
			StoredSeq uint64 `json:"stored_seq"`
		} `json:"sync"`
	}
	if err := cen.Do("GET", "/v1/sites/lab", nil, &site); err != nil {
		t.Fatal(err)
	}
	if site.Sync.Connected || site.Sync.StoredSeq != 0 || len(cen.Events("lab")) != 0 {
		t.Errorf("central after a refused site: %+v", site.Sync)
	}
	for _, f := range []string{n.proc.stderr, n.proc.stdout, cen.Proc.Stderr, cen.Proc.Stdout} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(wrong)) {
			t.Errorf("the credential is in %s", f)
		}
	}
}

// TestWANDownProvision is the WAN-down path end to end: an order placed
// at central reaches the site, the link is cut, the machine provisions
// with the site alone (BMC power on, PXE, install, boot from disk), the
// link heals, and central shows the whole timeline.
func TestWANDownProvision(t *testing.T) {
	cen := startCentral(t)
	// The site reaches central through a proxy in its namespace.
	cfg := bmcSiteConfig(t, 40*time.Second, 10*time.Second)
	cfg.Sync = &labsite.Sync{Central: cen, SiteID: "wan"}
	s := startBMCSite(t, cfg)
	proxy := s.WAN
	waitConnected(t, cen, "wan", true)

	const mac = "52:54:00:0a:0e:01"
	vm := startBMCVM(t, s, mac)
	machine := map[string]any{"id": "wan1", "hostname": "wan1", "arch": "x86_64",
		"interfaces": []map[string]any{{"name": "eth0", "mac": mac, "boot": true}},
		"bmc":        map[string]any{"address": vm.BMC.Addr, "driver": "ipmi", "username": vm.BMC.Username, "password": vm.BMC.Password}}
	if err := cen.Do("PUT", "/v1/sites/wan/machines/wan1", machine, nil); err != nil {
		t.Fatal(err)
	}
	order := map[string]any{"action": "provision", "machine_id": "wan1", "template": labsite.TemplateName,
		"image": labsite.TestOSName, "values": map[string]string{"hostname": "wan-host-1"}}
	if err := cen.Do("PUT", "/v1/sites/wan/orders/wan-prov", order, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	if err := labsite.Poll(ctx, time.Minute, func() error {
		var o store.Order
		return s.API.Get(ctx, "orders", "wan-prov", &o)
	}); err != nil {
		t.Fatalf("the order did not reach the site: %v", err)
	}
	t.Log("the order is at the site: cutting the link to central")
	proxy.SetMode(lab.Refuse)

	line, _, err := vm.waitSerial(ctx, testOSLine, 0)
	if err != nil {
		t.Fatalf("the machine did not provision with the link down: %v", err)
	}
	t.Logf("serial: %s", line)
	if o := waitOrder(ctx, t, s, "wan-prov"); o.State != store.OrderSucceeded {
		t.Fatalf("order at the site: %s %q", o.State, o.Reason)
	}

	t.Log("healing the link")
	proxy.SetMode(lab.Pass)
	events, err := s.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	last := events[len(events)-1].Seq
	cen.WaitStored(ctx, "wan", last, 2*time.Minute)
	// Central's timeline for the machine, in the site's order.
	var kinds []string
	for _, e := range cen.Events("wan") {
		if e.Data.MachineID != "wan1" {
			continue
		}
		switch e.Data.Kind {
		case "order.created", "bmc.job.succeeded", "workflow.running", "workflow.succeeded", "order.succeeded":
			kinds = append(kinds, e.Data.Kind)
		case "machine.state":
			kinds = append(kinds, e.Data.Kind+" "+e.Data.Fields["to"])
		}
	}
	want := []string{"machine.state provisioning", "order.created", "bmc.job.succeeded", "bmc.job.succeeded",
		"workflow.running", "workflow.succeeded", "machine.state provisioned", "order.succeeded"}
	if strings.Join(kinds, ", ") != strings.Join(want, ", ") {
		t.Errorf("central's timeline of wan1:\n got %q\nwant %q", kinds, want)
	}
	checkNoPassword(t, s, vm.BMC.Password)
	for _, f := range []string{cen.Proc.Stdout, cen.Proc.Stderr} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(vm.BMC.Password)) {
			t.Errorf("the BMC password is in %s", f)
		}
	}
}
