package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/browsertest"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/syncproto"
)

// The portal lab's sites and machines.
const (
	portalSiteA = "lab-a" // the VM's, in a namespace of its own
	portalSiteB = "lab-b" // on the test's loopback
	portalVM    = "vm1"
	portalVMMAC = "52:54:00:9a:00:01"
	// simsPerSite simulated machines at each site, tagged simTag.
	simsPerSite = 25
	simTag      = "sim"
)

// portalLab is what the central portal's browser test runs against: a
// real centrald serving HTTPS with a certificate from a CA of the
// test's (which the browser trusts), and two real sites synced with it,
// each through a WAN of its own that the test can cut and heal:
//
//	central (127.0.0.1, HTTPS)
//	   ├── WAN A: a fault proxy on site A's loopback ── site A (portalSiteA):
//	   │     applianced in a namespace with a QEMU VM behind ipmi_sim, which
//	   │     it provisions end to end (as TestWANDownProvision), and
//	   │     simsPerSite Redfish BMCs on the namespace's loopback
//	   └── WAN B: a fault proxy on the test's loopback ── site B (portalSiteB):
//	         applianced on the test's loopback, and simsPerSite Redfish BMCs
//	         there
//
// The test OS is in central's catalogue as casImageName, placed on site
// A. Every machine is registered at central, as a fleet's operator does,
// not at its site: the VM (portalVM, by its MAC and its ipmi_sim BMC),
// and the simulated machines "a-01"… and "b-01"…, tagged simTag, each
// behind an in-process lab.RedfishBMC. The BMCs' certificates come from
// the sites' BMC CA (-bmc-ca-file): the sites trust them with no
// operator accepting each. Everything goes away with the test, on
// failure too (the lab's own cleanups: namespaces, VM, processes).
type portalLab struct {
	t   *testing.T
	Cen *labsite.Central
	// CA is central's CA, which the browser trusts.
	CA *x509.Certificate
	A  *labsite.Site
	B  *syncedSite
	VM *bmcVM
	// Sims are the simulated machines' BMCs, by "site/id".
	Sims map[string]*lab.RedfishBMC
}

// startPortalLab starts the portal lab and returns once both sites are
// connected and have applied every machine central holds for them.
func startPortalLab(t *testing.T) *portalLab {
	t.Helper()
	began := time.Now()
	lab.Require(t, "root", "ip", "qemu-system-x86_64", "ipmi_sim", "ipmitool", "chromium", "certutil")
	cen := startCentralTLS(t)
	l := &portalLab{t: t, Cen: cen, CA: readCert(t, cen.CAFile), Sims: map[string]*lab.RedfishBMC{}}
	bmcCA := lab.NewCA(t, "BMC CA")
	bmcCAFile := bmcCA.WriteCert()

	cfg := bmcSiteConfig(t, 40*time.Second, 10*time.Second)
	cfg.Sync = &labsite.Sync{Central: cen, SiteID: portalSiteA}
	cfg.Args = append(cfg.Args, "-bmc-ca-file", bmcCAFile)
	l.A = startBMCSite(t, cfg)
	l.B = startSyncedSite(t, cen, portalSiteB, "-bmc-ca-file", bmcCAFile, "-bmc-poll-interval", "5s")

	l.VM = startBMCVM(t, l.A, portalVMMAC)
	l.put(portalSiteA, portalVM, portalVMMAC, nil, &store.BMC{Address: l.VM.BMC.Addr, Driver: "ipmi",
		Username: l.VM.BMC.Username, Password: l.VM.BMC.Password})
	// The image the portal offers: the test OS in central's catalogue,
	// which site A pulls from central.
	labsite.PublishCatalogueImage(t, cen, casImageName, l.A.Images.TestOSGz, "raw.gz", portalSiteA)
	for i := 1; i <= simsPerSite; i++ {
		l.startSim(portalSiteA, fmt.Sprintf("a-%02d", i), l.A.NS, bmcCA)
		l.startSim(portalSiteB, fmt.Sprintf("b-%02d", i), nil, bmcCA)
	}
	for _, site := range []string{portalSiteA, portalSiteB} {
		l.waitSynced(site)
	}
	t.Logf("the portal lab came up in %.1fs", time.Since(began).Seconds())
	return l
}

// readCert reads the (first) certificate of a PEM file.
func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

// startSim starts the BMC of simulated machine id of site, with a
// certificate of ca for its address, listening on the loopback of ns
// (nil: the test's own, where site B runs), and registers the machine
// at central.
func (l *portalLab) startSim(site, id string, ns *lab.Netns, ca *lab.CA) {
	l.t.Helper()
	cert := ca.Issue("127.0.0.1")
	rf := lab.StartRedfishBMC(l.t, lab.RedfishBMCConfig{Netns: ns, Certificate: &cert})
	l.Sims[site+"/"+id] = rf
	mac := fmt.Sprintf("02:00:00:9a:%02x:%02x", len(l.Sims)/256, len(l.Sims)%256)
	l.put(site, id, mac, []string{simTag}, &store.BMC{Address: rf.Addr, Driver: "redfish", Username: rf.Username, Password: rf.Password})
}

// put registers a machine at central for site.
func (l *portalLab) put(site, id, mac string, tags []string, bmc *store.BMC) {
	l.t.Helper()
	m := &syncproto.Machine{ID: id, Hostname: id, Arch: "x86_64", Tags: tags,
		Interfaces: []syncproto.Interface{{Name: "eth0", MAC: mac, Boot: true}},
		BMC:        &syncproto.BMC{Address: bmc.Address, Driver: bmc.Driver, Username: bmc.Username, Password: bmc.Password}}
	if err := l.Cen.Do("PUT", "/v1/sites/"+site+"/machines/"+id, m, nil); err != nil {
		l.t.Fatalf("register %s/%s at central: %v", site, id, err)
	}
}

// site reads central's view of site.
func (l *portalLab) site(site string) cclient.Site {
	l.t.Helper()
	var s cclient.Site
	if err := l.Cen.Do("GET", "/v1/sites/"+site, nil, &s); err != nil {
		l.t.Fatal(err)
	}
	return s
}

// waitSynced waits until central sees site connected, having applied
// the latest revision of its desired state.
func (l *portalLab) waitSynced(site string) {
	l.t.Helper()
	err := labsite.Poll(l.t.Context(), 2*time.Minute, func() error {
		var s cclient.Site
		if err := l.Cen.Do("GET", "/v1/sites/"+site, nil, &s); err != nil {
			return err
		}
		if !s.Sync.Connected || s.Sync.AckedRevision < s.Sync.LatestRevision {
			return fmt.Errorf("site %s: connected=%v, revision %d of %d applied", site, s.Sync.Connected,
				s.Sync.AckedRevision, s.Sync.LatestRevision)
		}
		return nil
	})
	if err != nil {
		l.t.Fatalf("waiting for %s to sync: %v", site, err)
	}
}

// wan is site's link to central.
func (l *portalLab) wan(site string) *lab.FaultProxy {
	if site == portalSiteA {
		return l.A.WAN
	}
	return l.B.proxy
}

// CutWAN cuts site's link to central and waits until central says the
// site is disconnected (GET /v1/sites/{site}).
func (l *portalLab) CutWAN(site string) {
	l.t.Helper()
	l.wan(site).SetMode(lab.Refuse)
	waitConnected(l.t, l.Cen, site, false)
}

// HealWAN brings site's link back and waits until central says the site
// is connected again.
func (l *portalLab) HealWAN(site string) {
	l.t.Helper()
	l.wan(site).SetMode(lab.Pass)
	waitConnected(l.t, l.Cen, site, true)
}

// Token makes a central token of role named name, and returns its
// secret.
func (l *portalLab) Token(name string, role access.Role) string {
	l.t.Helper()
	var tok httpapi.TokenCreated
	if err := l.Cen.Do("POST", "/v1/tokens", httpapi.TokenRequest{Name: name, Role: role}, &tok); err != nil {
		l.t.Fatalf("create central token %s: %v", name, err)
	}
	return tok.Token
}

// Browser starts chromium allowed to reach central alone, trusting
// central's CA.
func (l *portalLab) Browser() *browsertest.Browser {
	return browsertest.Start(l.t, browsertest.Allow(l.Cen.URL), browsertest.TrustCA(l.CA))
}

// SiteOrder waits until order key of site has ended at the site itself
// (not as central knows it), and returns it.
func (l *portalLab) SiteOrder(ctx context.Context, site, key string) *store.Order {
	l.t.Helper()
	if site == portalSiteA {
		return waitOrder(ctx, l.t, l.A, key)
	}
	o := l.B.c.waitOrderDone(l.B.n, key)
	return &o
}

// Revisions are the latest revisions of both sites' desired state at
// central: a change an order makes moves them.
func (l *portalLab) Revisions() [2]uint64 {
	l.t.Helper()
	return [2]uint64{l.site(portalSiteA).Sync.LatestRevision, l.site(portalSiteB).Sync.LatestRevision}
}

// SimIDs are the simulated machines, as "site/id", in order.
func (l *portalLab) SimIDs() []string {
	var ids []string
	for _, s := range []struct{ site, prefix string }{{portalSiteA, "a"}, {portalSiteB, "b"}} {
		for i := 1; i <= simsPerSite; i++ {
			ids = append(ids, fmt.Sprintf("%s/%s-%02d", s.site, s.prefix, i))
		}
	}
	return ids
}

// Resets counts the reset actions (power on, off, cycle) each simulated
// machine's BMC has received, by "site/id".
func (l *portalLab) Resets() map[string]int {
	out := map[string]int{}
	for id, rf := range l.Sims {
		for _, r := range rf.Requests() {
			if r.Method == "POST" && strings.HasSuffix(r.Path, "/Actions/ComputerSystem.Reset") {
				out[id]++
			}
		}
	}
	return out
}

// waitBMCsPolled waits until every simulated machine's site has read
// its BMC's power with its credentials: the site reaches each BMC, and
// trusts its certificate through the BMC CA.
func (l *portalLab) waitBMCsPolled() {
	l.t.Helper()
	err := labsite.Poll(l.t.Context(), time.Minute, func() error {
		var silent []string
		for _, id := range l.SimIDs() {
			if len(l.Sims[id].PasswordSeen()) == 0 {
				silent = append(silent, id)
			}
		}
		if len(silent) > 0 {
			return fmt.Errorf("%d BMCs not reached by their site yet: %v", len(silent), silent)
		}
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
}
