package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/soak"
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

	mu  sync.Mutex
	log []string // what each fault did, in order
	// done are the faults as injected: their start and end as they
	// happened (an agent kill's when its target was in its workflow),
	// and the central node a central kill killed.
	done []soak.Fault
}

// run injects every fault of s at its time, each on its own goroutine,
// and returns the faults as injected once all have ended.
func (in *soakInjector) run(ctx context.Context, s *soak.Schedule) []soak.Fault {
	in.done = make([]soak.Fault, len(s.Faults))
	var wg sync.WaitGroup
	for i, f := range s.Faults {
		in.done[i] = f
		wg.Go(func() {
			if sleepCtx(ctx, time.Until(in.start.Add(f.Start))) != nil {
				return
			}
			in.note(f, "begins")
			in.inject(ctx, i, f)
			in.note(f, "ends")
			in.annotate(ctx, i) // soak_annotate.go
		})
	}
	wg.Wait()
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
	if f.Kind != soak.AgentKill {
		in.happened(i, true, "")
		defer in.happened(i, false, "")
	}
	switch f.Kind {
	case soak.SiteKill:
		in.site.kill()
		in.until(ctx, f)
		if err := in.site.start(); err != nil {
			in.chk.Violate("site_restart", "applianced did not start again: %v", err)
		}
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
	case soak.AgentKill:
		if in.agentKill(ctx, f) {
			in.happened(i, true, "")
		}
	case soak.DiskFull:
		in.diskFull(ctx, f, in.site)
	case soak.ClockStep:
		in.clockStep(ctx, f, in.site)
	}
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

// agentKill kills f's target's walk once it is in its workflow, and
// says whether it did.
func (in *soakInjector) agentKill(ctx context.Context, f soak.Fault) bool {
	m := in.fleet.byID[f.Target]
	deadline := time.Now().Add(soakAgentWindow)
	for time.Now().Before(deadline) {
		if in.fleet.killWalk(ctx, m, soakAgentAfter) {
			in.note(f, "killed", "the walk of ", m.ID)
			return true
		}
		if sleepCtx(ctx, 100*time.Millisecond) != nil {
			return false
		}
	}
	in.note(f, "missed", "no walk of ", m.ID, " in its workflow within ", soakAgentWindow)
	return false
}
