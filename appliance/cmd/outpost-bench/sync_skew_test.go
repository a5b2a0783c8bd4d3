package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/appliance/internal/store"
	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/syncproto"
)

// The sync protocol between a central and a site of two releases, the
// one the soak upgrades from (-soak-upgrade-from, 75c47a5) and this
// one, each way: central ahead (a fleet whose central is upgraded while
// its sites still run the previous release: the common case) and site
// ahead (what the soak's rolling upgrade passes through). In each, the
// site syncs with central through a fault proxy; a machine registered
// at central, behind a real BMC (ipmi_sim), reaches the site, and an
// order placed at central is applied there (the BMC powers on); the
// site's events reach central, each exactly once, and central's fleet
// model has the machine in the site's state. Then events stream up
// through connections cut in the middle of messages; then the link goes
// down, and events recorded meanwhile and an order placed at central
// while it says the site is away arrive once it heals (the BMC powers
// off); then central is SIGKILLed while events stream, more are
// recorded while it is down, and it starts again on its data. After
// each, central holds every event of the site exactly once, and the
// site created each order once.
func TestSyncAcrossReleases(t *testing.T) {
	lab.Require(t, "git", "ipmi_sim", "ipmitool")
	if *soakUpgradeFrom == "" {
		t.Fatal(`-soak-upgrade-from is "": no release to sync across`)
	}
	root, err := stormModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bins, remove, err := buildSoakBins(t.Context(), root, *soakUpgradeFrom)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	t.Run("central_ahead", func(t *testing.T) { testSyncAcross(t, bins.newCentrald, bins.oldApplianced) })
	t.Run("site_ahead", func(t *testing.T) { testSyncAcross(t, bins.oldCentrald, bins.newApplianced) })
}

// syncSkewEvents is how many events each step records at the site:
// enough, at a few hundred bytes each, for a cut syncSkewCut bytes into
// a connection to fall in the middle of the stream; syncSkewCuts is how
// many connections are cut so.
const (
	syncSkewEvents = 1000
	syncSkewCut    = 32 << 10
	syncSkewCuts   = 3
)

// testSyncAcross is TestSyncAcrossReleases with centrald and
// applianced of the releases given.
func testSyncAcross(t *testing.T, centrald, applianced string) {
	l := startSyncSkewLab(t, centrald, applianced)
	l.registerMachine(t)
	l.order(t, "on1", store.OrderPowerOn, "on")
	l.record(t)
	l.checkEvents(t, "with the link up")

	// Connections cut in the middle of messages while events stream
	// up (a batch is up to syncproto.MaxEventsPerBatch events, larger
	// than a cut: while every connection is cut the stream cannot get
	// past it), until syncSkewCuts were; then central has them all.
	l.proxy.CutAfter(syncSkewCut)
	l.record(t)
	err := pollEvery(t.Context(), 100*time.Millisecond, 3*time.Minute, func() error {
		if n := l.proxy.Cut(); n < syncSkewCuts {
			return fmt.Errorf("the proxy cut %d connections", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the events streaming up were not cut after %d bytes %d times: %v", syncSkewCut, syncSkewCuts, err)
	}
	l.proxy.CutAfter(0)
	l.checkEvents(t, "through connections cut mid-message")

	// The link down: events recorded and an order placed meanwhile.
	l.proxy.SetMode(lab.Refuse)
	waitSiteConnected(t, l.cc, soakSiteID, false)
	l.record(t)
	l.placeOrder(t, "off1", store.OrderPowerOff)
	l.proxy.SetMode(lab.Pass)
	l.waitOrder(t, "off1", "off")
	l.checkEvents(t, "once the link healed")

	// Central SIGKILLed while events stream, more recorded while it is
	// down, and started again on its data.
	killed := l.killCentralMidStream(t)
	l.record(t)
	<-killed
	l.record(t)
	l.cen.start(l.cen.nodes[0])
	centralLeaderID(t, l.cen)
	l.checkEvents(t, "once central restarted")
	l.order(t, "on2", store.OrderPowerOn, "on")
	l.checkOrdersOnce(t, "on1", "off1", "on2")
}

// syncSkewLab is one central node and a single-node site syncing with
// it through a fault proxy, and the one machine's BMC.
type syncSkewLab struct {
	cen   *soakCentral
	cc    *cclient.Client // central's API, at its one node
	app   *httpAPI        // the site's API, to record events
	site  *soakSite       // only its api: soakCheckEvents's view of the site
	proxy *lab.FaultProxy // the site's link to central
	bmc   *lab.IPMISim
}

// startSyncSkewLab starts centrald (one node), creates the site
// soakSiteID there, and starts applianced syncing with it through a
// fault proxy, on loopback; then waits until central says it is
// connected.
func startSyncSkewLab(t *testing.T, centrald, applianced string) *syncSkewLab {
	cen := startSoakCentral(t, soakBins{oldCentrald: centrald, newCentrald: centrald}, 1)
	cred := (&centralProc{httpAPI: cen.nodes[0].api}).createSite(t, soakSiteID)
	credFile := filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy := lab.StartFaultProxy(t, "127.0.0.1:0", cen.nodes[0].addr)
	app := startSyncAppliance(t, applianced, "-central-url", "http://"+proxy.Addr, "-insecure-central", // a lab on loopback
		"-site-id", soakSiteID, "-site-credential-file", credFile)
	l := &syncSkewLab{cen: cen, app: app, proxy: proxy,
		cc:   cclient.New(cen.nodes[0].api.url, cen.token, cen.nodes[0].api.http),
		site: &soakSite{api: client.New(app.url, app.token)},
		bmc:  lab.StartIPMISim(t, lab.IPMISimConfig{Name: "m1"})}
	waitSiteConnected(t, l.cc, soakSiteID, true)
	return l
}

// registerMachine puts machine m1, behind the BMC, at central, and
// waits until the site has it.
func (l *syncSkewLab) registerMachine(t *testing.T) {
	t.Helper()
	m := &syncproto.Machine{ID: "m1", Hostname: "m1", Arch: "x86_64",
		Interfaces: []syncproto.Interface{{Name: "eth0", MAC: "02:00:00:5e:00:01", Boot: true}},
		BMC:        &syncproto.BMC{Address: l.bmc.Addr, Driver: "ipmi", Username: l.bmc.Username, Password: l.bmc.Password}}
	if err := l.cen.do(t.Context(), time.Minute, "PUT", "/v1/sites/"+soakSiteID+"/machines/m1", m, nil); err != nil {
		t.Fatalf("register m1 at central: %v", err)
	}
	err := pollEvery(t.Context(), 200*time.Millisecond, 2*time.Minute, func() error {
		var got store.Machine
		return l.site.api.Get(t.Context(), "machines", "m1", &got)
	})
	if err != nil {
		t.Fatalf("m1 registered at central never reached the site: %v", err)
	}
}

// order places order id (action on m1) at central and waits until the
// site has applied it: the order succeeded there and the BMC's power is
// power.
func (l *syncSkewLab) order(t *testing.T, id, action, power string) {
	t.Helper()
	l.placeOrder(t, id, action)
	l.waitOrder(t, id, power)
}

// placeOrder places order id (action on m1) at central.
func (l *syncSkewLab) placeOrder(t *testing.T, id, action string) {
	t.Helper()
	body := map[string]any{"action": action, "machine_id": "m1"}
	if err := l.cen.do(t.Context(), time.Minute, "PUT", "/v1/sites/"+soakSiteID+"/orders/"+id, body, nil); err != nil {
		t.Fatalf("place order %s at central: %v", id, err)
	}
}

// waitOrder waits until order id succeeded at the site and the BMC's
// power is power.
func (l *syncSkewLab) waitOrder(t *testing.T, id, power string) {
	t.Helper()
	ctx := t.Context()
	err := pollEvery(ctx, 500*time.Millisecond, 3*time.Minute, func() error {
		var o store.Order
		if err := l.site.api.Get(ctx, "orders", id, &o); err != nil {
			return err
		}
		if o.State == store.OrderFailed {
			t.Fatalf("order %s failed at the site: %s", id, o.Reason)
		}
		if o.State != store.OrderSucceeded {
			return fmt.Errorf("order %s is %q at the site", id, o.State)
		}
		if st, err := l.bmc.PowerState(ctx); err != nil || st != power {
			return fmt.Errorf("order %s succeeded, the BMC is %q (%v), want %s", id, st, err, power)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("order %s placed at central: %v", id, err)
	}
}

// record records syncSkewEvents events at the site.
func (l *syncSkewLab) record(t *testing.T) {
	t.Helper()
	recordEvents(t, l.app, syncSkewEvents, 8)
}

// killCentralMidStream SIGKILLs central's node, in the background, as
// soon as it has stored an event the site records after the call;
// killed is closed once it is dead.
func (l *syncSkewLab) killCentralMidStream(t *testing.T) (killed chan struct{}) {
	t.Helper()
	_, from, err := l.site.api.Events(t.Context(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	killed = make(chan struct{})
	go func() {
		defer close(killed)
		err := pollEvery(t.Context(), 20*time.Millisecond, 2*time.Minute, func() error {
			s, err := l.cc.Site(t.Context(), soakSiteID)
			if err == nil && s.Sync.StoredSeq <= from {
				err = fmt.Errorf("central stored the site's events to %d, not past %d", s.Sync.StoredSeq, from)
			}
			return err
		})
		if err != nil {
			t.Errorf("before the kill: %v", err)
		}
		l.cen.nodes[0].kill()
	}()
	return killed
}

// checkEvents waits until central has stored the site's last event and
// compares the two logs (soakCheckEvents): nothing lost, nothing twice,
// each the same; and central's fleet model, built from those events,
// has each machine in the state the site has it (soakCheckStates).
func (l *syncSkewLab) checkEvents(t *testing.T, when string) {
	t.Helper()
	chk := soak.NewChecker(func() time.Duration { return 0 })
	lost, dup, err := soakCheckEvents(t.Context(), l.cen, l.site, chk)
	if err != nil {
		t.Fatalf("events %s: %v", when, err)
	}
	soakCheckStates(t.Context(), l.cen, l.site, chk)
	if lost != 0 || dup != 0 || len(chk.Violations()) != 0 {
		t.Fatalf("events %s: %d lost, %d duplicated at central; violations %v", when, lost, dup, chk.Violations())
	}
}

// checkOrdersOnce checks that the site created each order once, by the
// events central stored.
func (l *syncSkewLab) checkOrdersOnce(t *testing.T, ids ...string) {
	t.Helper()
	events, err := soakCentralEvents(t.Context(), l.cen)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		n := 0
		for _, e := range events {
			if e.Kind == "order.created" && strings.Contains(e.Body, " order "+id+": ") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("central holds %d order.created events of %s, want 1", n, id)
		}
	}
}
