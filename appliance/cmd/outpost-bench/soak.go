package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The soak's flags.
var (
	soakDuration = flag.Duration("soak-duration", time.Hour,
		"how long the soak places orders (24h is a day); its faults are a day's, packed into it")
	soakSeed     = flag.Uint64("soak-seed", 0, "the soak's fault schedule's seed (0: a random one, printed)")
	soakMachines = flag.Int("soak-machines", 200, "simulated machines, each behind an ipmi_sim BMC, the soak provisions and deprovisions in a loop")
	soakCentrals = flag.Int("soak-central-nodes", 3, "centrald nodes of the soak's central")
	soakKinds    = flag.String("soak-faults", "", "comma-separated fault kinds the soak injects (default all: "+kindList()+")")
	soakPerKind  = flag.Int("soak-faults-per-kind", 0, "faults of each kind (0: a day's in an hour or more, fewer in proportion to an hour in a shorter soak, at least one)")
	soakReport   = flag.String("soak-report", "soak-report", "directory the soak writes soak.json and soak.svg into")
	soakInject   = flag.Bool("soak-inject-violation", false,
		"feed the checker one ACK of a held address to another MAC, to prove that a broken invariant fails the soak")
)

func kindList() string {
	var ks []string
	for _, k := range soak.Kinds {
		ks = append(ks, string(k))
	}
	return strings.Join(ks, ",")
}

// soakDrain bounds the wait, once placing ends, for the orders open to
// end and for central to store the site's last events.
const soakDrain = 10 * time.Minute

// benchSoak is `make soak`: a compressed day of provisioning under
// faults. A central of -soak-central-nodes centrald nodes on loopback;
// a site (applianced serving a sim.Net's boot network, as the storm's)
// syncing with it through a fault proxy per central node; -soak-machines
// simulated machines, each behind a real BMC (ipmi_sim, whose power-on
// boots the machine: a sim walk over DHCP through a relay, TFTP, boot
// HTTP and the agent API), which central orders to provision (a mix of
// two images and two templates) and deprovision in a loop for
// -soak-duration. -soak-vms real QEMU VMs (soak_vms.go), each behind
// an ipmi_sim of its own whose power on starts QEMU, join them on the
// same boot network: ordered the same way with the test OS images, they
// boot the real installer, write the image and boot the test OS, which
// must read its metadata after each provision. A seeded schedule of
// faults (soak.NewSchedule, printed first) runs meanwhile, hitting a VM
// only with the faults a real machine lives through (soak.VMKinds). The
// invariants (package soak) are checked as it runs and at its end; the
// report goes to -soak-report (soak.json, soak.svg) and the line
//
//	BENCH soak hours=<h> provisions=<n> failed=<n> success_ratio=<r> dup_ips=<n> lost_events=<n> dup_events=<n> p99_s=<s> faults=<n> vms=<n> vm_provisions=<n> vm_failed=<n> vm_booted=<n>
//
// It fails, naming each, on any broken invariant. Needs root, ipmi_sim,
// nft, tc and `make images`; with VMs, QEMU and the iPXE ROMs.
func benchSoak(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	kinds := soakScheduleKinds(*soakKinds, *soakUpgradeFrom)
	if *soakSiteNodes != 1 && *soakSiteNodes != 3 {
		return fmt.Errorf("-soak-site-nodes must be 1 or 3, not %d", *soakSiteNodes)
	}
	if *soakMachines < 1 || *soakMachines > stormMaxMachines {
		return fmt.Errorf("-soak-machines must be 1 to %d", stormMaxMachines)
	}
	seed := *soakSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	if *soakVMs < 0 || *soakVMs > soakMaxVMs {
		return fmt.Errorf("-soak-vms must be 0 to %d, not %d", soakMaxVMs, *soakVMs)
	}
	ids := make([]string, *soakMachines)
	for i := range ids {
		ids[i] = fmt.Sprintf("soak-%04d", i)
	}
	sched, err := soak.NewSchedule(seed, *soakDuration, ids, soakVMIDs(*soakVMs), kinds, *soakPerKind)
	if err != nil {
		return err
	}
	sched.Print(os.Stderr)
	root, err := stormModuleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outpost-bench-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, remove, err := buildSoakBins(ctx, root, *soakUpgradeFrom)
	if err != nil {
		return err
	}
	defer remove()
	art, err := sim.NewArtifacts(filepath.Join(root, "images", "out"), filepath.Join(dir, "artifacts"))
	if err != nil {
		return err
	}
	var vmImages []store.Object
	if *soakVMs > 0 {
		if vmImages, err = linkSoakVMImages(filepath.Join(root, "images", "out"), art); err != nil {
			return err
		}
	}
	var rep *soak.Report
	r := lab.NewRunner(ctx, "bench-soak", discardLog{log})
	err = r.Run(func(t lab.T) {
		rep, err = soakRun(ctx, t, sched, dir, bins, art, vmImages)
		if err != nil {
			t.Fatal(err)
		}
	})
	if rep == nil {
		return err
	}
	jsonPath, svgPath, werr := rep.Write(*soakReport)
	fmt.Println(rep.BenchLine())
	if werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintf(os.Stderr, "soak: report %s and %s\n", jsonPath, svgPath)
	if err != nil {
		return err
	}
	if len(rep.Violations) > 0 {
		var b strings.Builder
		for _, v := range rep.Violations {
			fmt.Fprintf(&b, "\n  %s", v)
		}
		return fmt.Errorf("%d invariant violations (seed %d):%s", len(rep.Violations), seed, b.String())
	}
	return nil
}

// soakScheduleKinds are the fault kinds of a schedule: those of the
// comma-separated list (nil: every kind), with an Upgrade first when
// there is a release to upgrade from (placed before the others, which
// keep clear of it).
func soakScheduleKinds(list, upgradeFrom string) []soak.Kind {
	var kinds []soak.Kind
	if upgradeFrom != "" {
		kinds = append(kinds, soak.Upgrade)
	}
	if list == "" {
		return append(kinds, soak.Kinds...)
	}
	for _, k := range strings.Split(list, ",") {
		if k := soak.Kind(strings.TrimSpace(k)); k != soak.Upgrade || upgradeFrom == "" {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// soakRun sets the lab up, runs the schedule and the orders, and checks
// the invariants at the end; vmImages are the VMs' OS images (none
// without VMs).
func soakRun(ctx context.Context, t lab.T, sched *soak.Schedule, dir string, bins soakBins, art *sim.Artifacts, vmImages []store.Object) (*soak.Report, error) {
	cen := startSoakCentral(t, bins, *soakCentrals)
	site, err := startSoakSite(ctx, t, *soakSiteNodes, dir, bins, art, cen)
	if err != nil {
		return nil, err
	}
	if err := putSoakSite(ctx, site, art, vmImages); err != nil {
		return nil, err
	}
	if *soakVMs > 0 {
		// Before the relay binds the address the bridge takes.
		if err := bridgeSoakVMs(t, site.sw.client); err != nil {
			return nil, err
		}
	}
	// Every node hears each relayed request, as from dhcrelay with
	// their addresses (storm3's).
	var nodes []netip.Addr
	for i := range site.nodes {
		nodes = append(nodes, netip.MustParseAddr(site3Addr(i)))
	}
	relay, err := sim.NewRelay(site.sw.client, netip.MustParseAddr(sim.ClientAddr), nodes[0], nodes[1:]...)
	if err != nil {
		return nil, err
	}
	defer relay.Close()
	env := &sim.Env{Netns: site.sw.client, Relay: relay, Server: nodes[0], Servers: nodes, BootPort: stormBootPort,
		Artifacts: art, NetbootRetries: stormNetbootRetries, Rediscover: true}
	var start time.Time
	chk := soak.NewChecker(func() time.Duration { return time.Since(start) })
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	began := time.Now()
	fleet, err := startSoakFleet(runCtx, t, site.bmc, soakBMCAddr, env, chk, dir, *soakMachines)
	if err != nil {
		return nil, err
	}
	if err := startSoakVMs(runCtx, t, fleet, site.sw.client, soakVMIDs(*soakVMs)); err != nil {
		return nil, err
	}
	if err := registerSoakMachines(ctx, cen, site, fleet); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "soak: lab up in %.0f s: central %d nodes, site %s %d nodes, %d machines behind ipmi_sim (%d real VMs)\n",
		time.Since(began).Seconds(), len(cen.nodes), soakSiteID, len(site.nodes), len(fleet.list), *soakVMs)
	start = time.Now()
	return soakLoop(runCtx, t, sched, start, cen, site, fleet, chk)
}
