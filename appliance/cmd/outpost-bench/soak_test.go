package main

import (
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/soak"
)

// A short soak against the real daemons (a minute of orders, four
// machines, a 3-node site, a kill of its leader and a WAN partition) with one violation fed to
// its checker: the soak fails naming that invariant, and only that one,
// and its report shows that it provisioned, which the faults did not
// stop. The checker can fail, and the rest of the run held.
func TestSoakCatchesViolation(t *testing.T) {
	lab.Require(t, "root", "ip", "ipmi_sim", "ipmitool", "nft", "tc")
	if _, err := os.Stat("../../../images/out/testos.raw.gz"); err != nil {
		lab.Unavailable(t, "no boot artifacts in images/out: make images")
	}
	report := t.TempDir()
	set := func(name, value string) {
		old := flag.Lookup(name).Value.String()
		if err := flag.Set(name, value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { flag.Set(name, old) })
	}
	set("soak-duration", "1m")
	set("soak-machines", "4")
	set("soak-seed", "17")
	set("soak-faults", string(soak.SiteKill)+","+string(soak.WANPartition))
	set("soak-faults-per-kind", "1")
	set("soak-report", report)
	set("soak-inject-violation", "true")
	set("soak-upgrade-from", "") // the site is three nodes of this release
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := benchSoak(t.Context(), log, time.Minute)
	if err == nil || !strings.Contains(err.Error(), soak.InvDupAddress) {
		t.Fatalf("the soak with a violation injected ended with %v, want it to name %s", err, soak.InvDupAddress)
	}
	raw, rerr := os.ReadFile(filepath.Join(report, "soak.json"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	var rep soak.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Violations) != 1 || rep.Violations[0].Invariant != soak.InvDupAddress {
		t.Errorf("violations %v, want only the injected %s", rep.Violations, soak.InvDupAddress)
	}
	if rep.Provisions == 0 || rep.Failed != 0 || len(rep.Faults) != 2 {
		t.Errorf("report: %d provisions, %d failed, %d faults; want some, none failed, 2 faults", rep.Provisions, rep.Failed, len(rep.Faults))
	}
	if _, err := os.Stat(filepath.Join(report, "soak.svg")); err != nil {
		t.Error(err)
	}
}
