package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/soak"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// soakInjector injects a schedule's faults into the soak's lab.
type soakInjector struct {
	t     lab.T
	start time.Time
	cen   *soakCentral
	site  *soakSite
	fleet *soakFleet
	bn    *sim.Net
	chk   *soak.Checker

	evidence sync.WaitGroup // sawEvent's watches that run apart

	mu  sync.Mutex
	log []string // what each fault did, in order
	// done are the faults as injected: their start and end as they
	// happened (an agent kill's when its target was in its workflow),
	// and the central node a central kill killed.
	done []soak.Fault
	// unposted are the indexes in done of the faults central did not
	// record when they ended (annotate), posted again at the end.
	unposted []int
}

// run injects every fault of s at its time, each on its own goroutine,
// and returns the faults as injected once all have ended.
func (in *soakInjector) run(ctx context.Context, s *soak.Schedule) []soak.Fault {
	in.done = make([]soak.Fault, len(s.Faults))
	// The schedule puts every fault after the upgrade; one that overruns
	// its time holds the others back, so that no fault meets a node of
	// the previous release.
	upgraded := make(chan struct{})
	if !slices.ContainsFunc(s.Faults, func(f soak.Fault) bool { return f.Kind == soak.Upgrade }) {
		close(upgraded)
	}
	var wg sync.WaitGroup
	for i, f := range s.Faults {
		in.done[i] = f
		wg.Go(func() {
			if sleepCtx(ctx, time.Until(in.start.Add(f.Start))) != nil {
				return
			}
			if f.Kind != soak.Upgrade {
				select {
				case <-ctx.Done():
					return
				case <-upgraded:
				}
			}
			in.note(f, "begins")
			in.inject(ctx, i, f)
			in.note(f, "ends")
			if f.Kind == soak.Upgrade {
				close(upgraded)
			}
			in.annotate(ctx, i) // soak_annotate.go
		})
	}
	wg.Wait()
	in.evidence.Wait()
	return in.done
}

// happened records fault i's start or end as now; target, if set, is
// what it hit.
func (in *soakInjector) happened(i int, start bool, target string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Since(in.start)
	if start {
		in.done[i].Start = now
	}
	in.done[i].End = now
	if target != "" {
		in.done[i].Target = target
	}
}

func (in *soakInjector) note(f soak.Fault, what string, args ...any) {
	line := fmt.Sprintf("soak: %7.1fs fault %s %s", time.Since(in.start).Seconds(), f.Kind, what)
	if f.Target != "" {
		line += " (" + f.Target + ")"
	}
	if len(args) > 0 {
		line += ": " + fmt.Sprint(args...)
	}
	fmt.Fprintln(os.Stderr, line)
	in.mu.Lock()
	in.log = append(in.log, line)
	in.mu.Unlock()
}

// until waits for fault f's end.
func (in *soakInjector) until(ctx context.Context, f soak.Fault) {
	sleepCtx(ctx, time.Until(in.start.Add(f.End)))
}

// inject does fault f, the ith, from its start to its end.
func (in *soakInjector) inject(ctx context.Context, i int, f soak.Fault) {
	if f.Kind != soak.AgentKill && f.Kind != soak.ImageCorrupt {
		in.happened(i, true, "")
		defer in.happened(i, false, "")
	}
	switch f.Kind {
	case soak.SiteKill:
		_, since, _ := in.site.api.Events(ctx, 0, 1)
		in.site.kill()
		in.until(ctx, f)
		if err := in.site.start(); err != nil {
			in.chk.Violate("site_restart", "applianced did not start again: %v", err)
		}
		// Apart, so that the fault ends now.
		in.evidence.Go(func() { in.sawEvent(ctx, f, since, "", "taken over from attempt") })
	case soak.CentralKill:
		nd := in.cen.leader(ctx)
		if nd == nil {
			in.note(f, "skipped", "no central node says it leads")
			return
		}
		in.note(f, "kills", nd.id)
		in.happened(i, true, "central/"+nd.id)
		nd.kill()
		in.until(ctx, f)
		in.cen.start(nd)
	case soak.WANPartition:
		in.site.setWAN(lab.Refuse)
		in.until(ctx, f)
		in.site.setWAN(lab.Pass)
	case soak.WANFlap:
		in.flap(ctx, f)
	case soak.BootLoss:
		in.bootLoss(ctx, f)
	case soak.BMCDead:
		m := in.fleet.byID[f.Target]
		m.bmc.Process.Kill()
		in.until(ctx, f)
		m.bmc.Restart()
	case soak.Upgrade:
		in.upgrade(ctx, f) // soak_upgrade.go
	case soak.BMCTimeout:
		in.bmcHang(ctx, f)
	case soak.BMCRefuse:
		in.bmcRefuse(ctx, f)
	case soak.AgentKill:
		_, since, _ := in.site.api.Events(ctx, 0, 1)
		if in.agentKill(ctx, f) {
			in.happened(i, true, "")
			in.sawEvent(ctx, f, since, f.Target, "retry after lost attempt")
		}
	case soak.ImageCorrupt:
		if in.imageCorrupt(ctx, f) {
			in.happened(i, true, "")
		}
	case soak.DiskFull:
		in.diskFull(ctx, f, in.site)
	case soak.ClockStep:
		in.clockStep(ctx, f, in.site)
	}
}

// bmcHang stops f's target's BMC (SIGSTOP: it answers nothing, its
// state kept) until f ends, then lets it go on.
func (in *soakInjector) bmcHang(ctx context.Context, f soak.Fault) {
	p := in.fleet.byID[f.Target].bmc.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		in.chk.Violate("lab", "bmc.timeout: stop %s's ipmi_sim: %v", f.Target, err)
		return
	}
	in.until(ctx, f)
	if err := p.Signal(syscall.SIGCONT); err != nil {
		in.chk.Violate("lab", "bmc.timeout: continue %s's ipmi_sim: %v", f.Target, err)
	}
}

// bmcRefuse makes the port of f's target's BMC answer ICMP port
// unreachable to every packet (nftables reject) until f ends.
func (in *soakInjector) bmcRefuse(ctx context.Context, f soak.Fault) {
	m := in.fleet.byID[f.Target]
	_, port, err := net.SplitHostPort(m.bmc.Addr)
	if err != nil {
		in.chk.Violate("lab", "bmc.refuse: %s's BMC address %q: %v", f.Target, m.bmc.Addr, err)
		return
	}
	table := "soakrefuse_" + strings.ReplaceAll(f.Target, "-", "_")
	rules := fmt.Sprintf("table inet %s {\n\tchain in { type filter hook input priority 0; udp dport %s reject; }\n}\n", table, port)
	file := filepath.Join(in.t.TempDir(), table+".nft")
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		in.chk.Violate("lab", "bmc.refuse: %v", err)
		return
	}
	ns := in.fleet.bmcNetns
	if out, err := ns.Run(ctx, "nft", "-f", file); err != nil {
		in.chk.Violate("lab", "bmc.refuse: nft -f: %v: %s", err, out)
		return
	}
	in.until(ctx, f)
	if out, err := ns.Run(context.WithoutCancel(ctx), "nft", "delete", "table", "inet", table); err != nil {
		in.chk.Violate("lab", "bmc.refuse: nft delete table %s: %v: %s", table, err, out)
	}
}

// imageCorrupt arms the damage of one byte of f's target's next image
// download, and says whether a download took it within
// soakAgentWindow (a machine that is deprovisioning downloads none).
func (in *soakInjector) imageCorrupt(ctx context.Context, f soak.Fault) bool {
	m := in.fleet.byID[f.Target]
	m.damage.Store(true)
	deadline := time.Now().Add(soakAgentWindow)
	for time.Now().Before(deadline) {
		if !m.damage.Load() {
			in.note(f, "damaged", "a byte of an image download of ", m.ID)
			return true
		}
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	if m.damage.CompareAndSwap(true, false) {
		in.note(f, "missed", "no image download of ", m.ID, " within ", soakAgentWindow)
		return false
	}
	in.note(f, "damaged", "a byte of an image download of ", m.ID)
	return true
}

// actionRunning says whether an action of the workflow of m's open
// order is running, as the site has it.
func (in *soakInjector) actionRunning(ctx context.Context, m *soakMachine) bool {
	m.mu.Lock()
	id := m.order
	m.mu.Unlock()
	if id == "" {
		return false
	}
	var o store.Order
	var w store.Workflow
	if in.site.api.Get(ctx, "orders", id, &o) != nil || o.Workflow == "" || in.site.api.Get(ctx, "workflows", o.Workflow, &w) != nil || w.State == nil {
		return false
	}
	for _, a := range w.State.Actions {
		if a.Status == workflow.Running {
			return true
		}
	}
	return false
}

// soakEvidenceWindow is how long sawEvent looks for the product's
// answer to a fault in the site's events.
const soakEvidenceWindow = time.Minute

// sawEvent notes in the fault log the first event after sequence since,
// of machine (any if ""), whose message holds text, within
// soakEvidenceWindow: the product's answer to f (a lost attempt retried,
// a BMC job taken over), or that none came (which may be right: a walk
// killed between actions leaves no attempt running, a site killed
// between BMC jobs none to take over).
func (in *soakInjector) sawEvent(ctx context.Context, f soak.Fault, since uint64, machine, text string) {
	deadline := time.Now().Add(soakEvidenceWindow)
	for time.Now().Before(deadline) {
		events, _, err := in.site.api.Events(ctx, since, 1000)
		for _, e := range events {
			since = e.Seq
			if (machine == "" || e.MachineID == machine) && strings.Contains(e.Message, text) {
				in.note(f, "answered", e.Kind+" "+e.MachineID+": "+e.Message)
				return
			}
		}
		if err == nil && len(events) == 1000 {
			continue
		}
		if sleepCtx(ctx, time.Second) != nil {
			return
		}
	}
	in.note(f, "unanswered", "no event ", fmt.Sprintf("%q", text), " within ", soakEvidenceWindow)
}

// flap cuts the WAN for 3 s and heals it for 3 s, until f ends.
func (in *soakInjector) flap(ctx context.Context, f soak.Fault) {
	defer in.site.setWAN(lab.Pass)
	for down := true; time.Now().Before(in.start.Add(f.End)); down = !down {
		if down {
			in.site.setWAN(lab.Refuse)
		} else {
			in.site.setWAN(lab.Pass)
		}
		if sleepCtx(ctx, 3*time.Second) != nil {
			return
		}
	}
}

// soakLossPct is the share of the boot network's packets BootLoss drops
// (on the machines' side, both ways), and soakRate the rate it limits
// the machines' side's sending to.
const (
	soakLossPct = 10
	soakRate    = "20mbit"
)

// bootLoss drops soakLossPct % of the packets in and out of the
// machines' namespace (nftables numgen: this kernel has no netem) and
// limits their sending rate (tbf), until f ends.
func (in *soakInjector) bootLoss(ctx context.Context, f soak.Fault) {
	ns := in.bn.Client
	rules := fmt.Sprintf(`table inet soakloss {
	chain in { type filter hook input priority 0; numgen random mod 100 < %d drop; }
	chain out { type filter hook output priority 0; numgen random mod 100 < %d drop; }
}
`, soakLossPct, soakLossPct)
	file := in.t.TempDir() + "/loss.nft"
	if err := os.WriteFile(file, []byte(rules), 0o644); err != nil {
		in.chk.Violate("lab", "boot loss: %v", err)
		return
	}
	for _, cmd := range [][]string{
		{"nft", "-f", file},
		{"tc", "qdisc", "add", "dev", sim.ClientIface, "root", "tbf", "rate", soakRate, "burst", "32kbit", "latency", "400ms"},
	} {
		if out, err := ns.Run(ctx, cmd[0], cmd[1:]...); err != nil {
			in.chk.Violate("lab", "boot loss: %s: %v: %s", strings.Join(cmd, " "), err, out)
		}
	}
	in.until(ctx, f)
	clean := context.WithoutCancel(ctx)
	ns.Run(clean, "nft", "delete", "table", "inet", "soakloss")
	ns.Run(clean, "tc", "qdisc", "del", "dev", sim.ClientIface, "root")
}

// soakAgentWindow is how long AgentKill waits for its target to be in
// the middle of a walk, and soakAgentAfter how long into its walk it
// kills it (past DHCP, TFTP and the boot: in its workflow).
const (
	soakAgentWindow = 3 * time.Minute
	soakAgentAfter  = 700 * time.Millisecond
)

// agentKill kills f's target's walk once an action of its workflow
// runs (its image write, its wipe), or resets a VM then, as its
// installer panicking would, and says whether it did.
func (in *soakInjector) agentKill(ctx context.Context, f soak.Fault) bool {
	m := in.fleet.byID[f.Target]
	deadline := time.Now().Add(soakAgentWindow)
	for time.Now().Before(deadline) {
		switch running := in.actionRunning(ctx, m); {
		case running && m.vm != nil:
			if err := m.vm.reset(ctx); err != nil {
				in.note(f, "missed", "reset ", m.ID, ": ", err)
				return false
			}
			in.note(f, "reset", "the VM ", m.ID)
			return true
		case running && in.fleet.killWalk(ctx, m, soakAgentAfter):
			in.note(f, "killed", "the walk of ", m.ID)
			return true
		}
		if sleepCtx(ctx, 250*time.Millisecond) != nil {
			return false
		}
	}
	in.note(f, "missed", "no action of ", m.ID, "'s workflow running within ", soakAgentWindow)
	return false
}
