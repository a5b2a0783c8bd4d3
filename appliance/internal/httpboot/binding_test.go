package httpboot

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// withheldCount is outpost_httpboot_credential_withheld_total{kind}.
func withheldCount(kind string) float64 {
	var m dto.Metric
	withheld.WithLabelValues(kind).Write(&m)
	return m.GetCounter().GetValue()
}

// TestScriptFromAnotherAddress: a machine's install script carries its
// workflow's credential only when fetched from the address leased to the
// machine; from any other address (no lease, another machine's, an
// expired or merely offered lease) it is the error script saying why, with
// no credential, and it is counted.
func TestScriptFromAnotherAddress(t *testing.T) {
	f := newFixture(t, installer(), machine("m1", "52:54:00:12:34:56", store.StateProvisioning),
		machine("m2", "52:54:00:12:34:57", store.StateReady),
		&store.Lease{IP: "198.18.0.150", MAC: "52:54:00:12:34:58", Subnet: "lab", State: store.LeaseActive, Starts: t0.Add(-2 * time.Hour), Expires: t0.Add(-time.Minute)},
		&store.Lease{IP: "198.18.0.151", MAC: "52:54:00:12:34:59", Subnet: "lab", State: store.LeaseOffered, Starts: t0.Add(-time.Minute), Expires: t0.Add(time.Hour)},
	)
	const target = base + "/ipxe/boot.ipxe?mac=52:54:00:12:34:56&arch=x86_64&platform=efi"
	_, body := f.getFrom(t, f.leased["52:54:00:12:34:56"], target)
	if variantOf(t, body) != variantInstall || !strings.Contains(body, "outpost.token=w") {
		t.Fatalf("from m1's lease: want the install script with its credential:\n%s", body)
	}
	for name, from := range map[string]string{
		"no lease":              unleased,
		"another machine's":     f.leased["52:54:00:12:34:57"],
		"an expired lease":      "198.18.0.150",
		"an offered lease":      "198.18.0.151",
		"loopback":              "127.0.0.1",
		"mapped v4 of no lease": "::ffff:198.18.0.250",
		"IPv6 on the boot net":  "2001:db8::10",
	} {
		before := withheldCount(kindWorkflow)
		res, body := f.getFrom(t, from, target)
		checkScriptHeaders(t, res)
		if variantOf(t, body) != variantError || strings.Contains(body, "outpost.token") || strings.Contains(body, "kernel ") {
			t.Errorf("%s: want the error script, no credential, no kernel:\n%s", name, body)
		}
		if !strings.Contains(body, "so it gets no installer credential") {
			t.Errorf("%s: the error script does not say why:\n%s", name, body)
		}
		if got := withheldCount(kindWorkflow) - before; got != 1 {
			t.Errorf("%s: withheld{kind=workflow} rose by %v, want 1", name, got)
		}
	}
}

// TestDiscoveryScriptFromAnotherAddress: an unknown MAC's discovery
// credential is only given to the address leased to that MAC, bound to it
// and expiring DiscoveryTTL later.
func TestDiscoveryScriptFromAnotherAddress(t *testing.T) {
	const mac = "52:54:00:ab:cd:ef"
	f := newFixture(t, installer(), machine("m2", "52:54:00:12:34:57", store.StateReady))
	f.serve(t, Config{DiscoveryTTL: 10 * time.Minute})
	const target = base + "/ipxe/boot.ipxe?mac=" + mac
	for name, from := range map[string]string{"no lease": unleased, "another MAC's": f.leased["52:54:00:12:34:57"]} {
		_, body := f.getFrom(t, from, target)
		if variantOf(t, body) != variantError || strings.Contains(body, "outpost.token") || !strings.Contains(body, "so it gets no discovery credential") {
			t.Errorf("%s: want the error script saying why, with no credential:\n%s", name, body)
		}
	}
	addr := f.lease(t, mac)
	_, body := f.getFrom(t, addr, target)
	want := fmt.Sprintf(".525400abcdef.c612%04x.%d.", 10+1, t0.Add(10*time.Minute).Unix()) // 198.18.0.11
	if variantOf(t, body) != variantDiscover || !strings.Contains(body, want) {
		t.Errorf("from the MAC's lease %s: want the discover script with a credential holding %q:\n%s", addr, want, body)
	}
}

// TestFirstClaimScript: where the appliance leases nothing, the first
// address to fetch a machine's script after its workflow began gets the
// credential, and the workflow records it; any other address then gets
// the error script, and the first again gets the credential without a new
// claim. A discovery credential goes to whoever asks, bound to it.
func TestFirstClaimScript(t *testing.T) {
	f := newFixture(t, installer())
	f.serve(t, Config{Binding: provision.BindFirstClaim,
		Binder: site.NewProposer(site.ProposerConfig{Log: site.NewLocalLog(f.db, nil), Store: f.db})})
	m := machine("m1", "52:54:00:12:34:56", store.StateProvisioning)
	m.Interfaces[0].Boot = false // no lease: the appliance leases nothing
	f.put(t, m)
	const target = base + "/ipxe/boot.ipxe?mac=52:54:00:12:34:56"

	_, body := f.getFrom(t, "198.18.5.20", target)
	if variantOf(t, body) != variantInstall || !strings.Contains(body, "outpost.token=w") {
		t.Fatalf("the first fetch: want the install script with the credential:\n%s", body)
	}
	var w *store.Workflow
	f.db.View(func(tx *store.Tx) (err error) { w, err = store.Get[store.Workflow](tx, "wf-m1"); return err })
	if w.BootAddr != "198.18.5.20" {
		t.Fatalf("wf-m1 is bound to %q, want the first fetcher 198.18.5.20", w.BootAddr)
	}
	applied := f.db.AppliedIndex()
	_, body = f.getFrom(t, "198.18.5.21", target)
	if variantOf(t, body) != variantError || strings.Contains(body, "outpost.token") ||
		!strings.Contains(body, "workflow wf-m1 is bound to another address, the first to claim it, so 198.18.5.21 gets no installer credential") {
		t.Errorf("a second address: want the error script saying the workflow is bound elsewhere:\n%s", body)
	}
	_, body = f.getFrom(t, "198.18.5.20", target)
	if variantOf(t, body) != variantInstall || !strings.Contains(body, "outpost.token=w") {
		t.Errorf("the first address again: want the credential:\n%s", body)
	}
	if got := f.db.AppliedIndex(); got != applied {
		t.Errorf("fetches after the claim moved the applied index from %d to %d", applied, got)
	}

	_, body = f.getFrom(t, "198.18.5.30", base+"/ipxe/boot.ipxe?mac=52:54:00:ab:cd:ef")
	if variantOf(t, body) != variantDiscover || !strings.Contains(body, ".525400abcdef.c612051e.") {
		t.Errorf("an unknown MAC: want a discovery credential bound to 198.18.5.30:\n%s", body)
	}
}

// TestFirstClaimNeedsBinder: BindFirstClaim without a Binder is refused.
func TestFirstClaimNeedsBinder(t *testing.T) {
	f := newFixture(t)
	if s, err := New(Config{DB: f.db, ArtifactDir: f.artifacts, Credentials: testCredentials, Binding: provision.BindFirstClaim}); err == nil {
		s.Close()
		t.Error("New with BindFirstClaim and no Binder succeeded")
	}
}

// racingBinder lets another address claim each workflow first, as a
// fetch from another address that won the race between this fetch's read
// and its claim would.
type racingBinder struct {
	Binder
	first netip.Addr
}

func (b racingBinder) BindWorkflow(ctx context.Context, id string, addr netip.Addr) (*store.Workflow, error) {
	if _, err := b.Binder.BindWorkflow(ctx, id, b.first); err != nil {
		return nil, err
	}
	return b.Binder.BindWorkflow(ctx, id, addr)
}

// TestFirstClaimLost: a fetch whose claim lost to another address's gets
// no credential.
func TestFirstClaimLost(t *testing.T) {
	f := newFixture(t, installer())
	proposer := site.NewProposer(site.ProposerConfig{Log: site.NewLocalLog(f.db, nil), Store: f.db})
	f.serve(t, Config{Binding: provision.BindFirstClaim, Binder: racingBinder{proposer, netip.MustParseAddr("198.18.5.99")}})
	m := machine("m1", "52:54:00:12:34:56", store.StateProvisioning)
	m.Interfaces[0].Boot = false // no lease: the appliance leases nothing
	f.put(t, m)
	_, body := f.getFrom(t, "198.18.5.20", base+"/ipxe/boot.ipxe?mac=52:54:00:12:34:56")
	if variantOf(t, body) != variantError || strings.Contains(body, "outpost.token") || !strings.Contains(body, "bound to another address") {
		t.Errorf("a fetch whose claim lost: want the error script saying the workflow is bound elsewhere:\n%s", body)
	}
}
