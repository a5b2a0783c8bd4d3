package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

func TestPortalScratchAPI(t *testing.T) {
	began := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6.1fs %s", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
	}
	l := startPortalLab(t)
	checkPortalLab(t, l)
	step("lab checked")
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	order := map[string]any{"action": "provision", "machine_id": portalVM, "template": labsite.TemplateName,
		"image": casImageName, "values": map[string]string{"hostname": "portal-host-1"}}
	if err := l.Cen.Do("PUT", "/v1/sites/"+portalSiteA+"/orders/prov1", order, nil); err != nil {
		t.Fatal(err)
	}
	if o := l.SiteOrder(ctx, portalSiteA, "prov1"); o.State != store.OrderSucceeded {
		t.Fatalf("prov1: %s %q", o.State, o.Reason)
	}
	step("provisioned")
	evs, _ := l.A.Events(ctx)
	for _, e := range evs {
		if e.MachineID == portalVM {
			t.Logf("%s %s %s %v", e.Time.Format("15:04:05.000"), e.Kind, e.Message, e.Fields)
		}
	}
	line, _, err := l.VM.waitSerial(ctx, testOSLine, 0)
	step("serial %q %v", line, err)
	l.CutWAN(portalSiteB)
	step("B cut: disconnected at central")
	if err := l.Cen.Do("PUT", "/v1/sites/"+portalSiteB+"/orders/on-b01", map[string]any{"action": "power_on", "machine_id": "b-01"}, nil); err != nil {
		t.Fatal(err)
	}
	s := l.site(portalSiteB)
	t.Logf("B while cut: %+v", s.Sync)
	if s.Sync.AckedRevision >= s.Sync.LatestRevision || l.Sims[portalSiteB+"/b-01"].Power() != "Off" {
		t.Errorf("not waiting")
	}
	l.HealWAN(portalSiteB)
	if o := l.SiteOrder(ctx, portalSiteB, "on-b01"); o.State != store.OrderSucceeded {
		t.Fatalf("on-b01: %s %q", o.State, o.Reason)
	}
	step("B healed: delivered, power %s", l.Sims[portalSiteB+"/b-01"].Power())
	before := l.Resets()
	for _, id := range l.SimIDs() {
		site, m := id[:5], id[6:]
		if err := l.Cen.Do("PUT", "/v1/sites/"+site+"/orders/bulk-"+m, map[string]any{"action": "power_cycle", "machine_id": m}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range l.SimIDs() {
		site, m := id[:5], id[6:]
		if o := l.SiteOrder(ctx, site, "bulk-"+m); o.State != store.OrderSucceeded {
			t.Errorf("%s: %s %q", id, o.State, o.Reason)
		}
	}
	after := l.Resets()
	for _, id := range l.SimIDs() {
		if after[id] <= before[id] {
			t.Errorf("%s no reset", id)
		}
	}
	step("bulk 50 done")
}
