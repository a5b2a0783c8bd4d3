package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// stormNodes is provision.storm's site size: 1, or 3 with the leader
// SIGKILLed halfway.
var stormNodes = flag.Int("storm-nodes", 1,
	"applianced nodes of provision.storm's site: 1, or 3 (the leader is SIGKILLed once half the machines have finished)")

// stormNetbootRetries is how often a machine of the 3-node storm starts
// its network boot over (sim.Env.NetbootRetries): enough for a boot that
// met the dead leader, as a server's BIOS loops.
const stormNetbootRetries = 3

// stormSite3 is provision.storm on a 3-node site: three applianced, each
// in a namespace of its own on one boot network (newDHCPSwitch, as
// dhcp.nodes3), the machines and their relay in another, the relay
// sending every request to the three nodes (dhcrelay with three server
// addresses). Once half the machines have finished, the leader is
// SIGKILLed; machines carry on as real ones do: the firmware starts its
// network boot over after a failure (sim.Env.NetbootRetries), the agent
// finds the new leader through DHCP when its appliance stops answering
// (sim.Env.Rediscover). It prints
//
//	BENCH provision.storm nodes=3 machines=<n> ok=<n> failed=<n> p50=<s> p99=<s> appliance_cpu=<s> appliance_cpu_per_machine_ms=<ms> killed_at=<s> longest_gap=<s> gap_before_kill=<s>
//
// where appliance_cpu is the three nodes' CPU time together (the killed
// one's up to its death), killed_at is when the leader died (from the
// storm's start), longest_gap the longest time after it in which no
// machine finished (the failover's cost), and gap_before_kill the same
// before it, for comparison.
func stormSite3(ctx context.Context, log *slog.Logger, t lab.T, dir, bin, images string, n, par int) error {
	sw := newDHCPSwitch(t, site3Nodes)
	art, err := sim.NewArtifacts(images, filepath.Join(dir, "artifacts"))
	if err != nil {
		return err
	}
	site, auth, err := startSite(ctx, sw, dir, bin, func(i int, ndir string) ([]string, error) {
		return stormNodeArgs(art, i, ndir)
	})
	if err != nil {
		return err
	}
	defer site.stop()
	api, err := auth.client(sw.nodes[0], site3Addr(0)+":7000", time.Minute)
	if err != nil {
		return err
	}
	if err := api.Put(ctx, "subnets", stormSubnet.Name, stormSubnet, nil); err != nil {
		return fmt.Errorf("put subnet: %w", err)
	}
	machines := sim.Machines(n)
	began := time.Now()
	if err := putStormSite(ctx, api, art, machines); err != nil {
		return fmt.Errorf("set up the site: %w; %s", err, site.logTail())
	}
	fmt.Fprintf(os.Stderr, "storm: 3-node site set up (%d machines and workflows) in %.1f s\n", n, time.Since(began).Seconds())
	var nodes []netip.Addr
	for i := range site3Nodes {
		nodes = append(nodes, netip.MustParseAddr(site3Addr(i)))
	}
	relay, err := sim.NewRelay(sw.client, netip.MustParseAddr(sim.ClientAddr), nodes[0], nodes[1:]...)
	if err != nil {
		return err
	}
	defer relay.Close()
	senv := &sim.Env{Netns: sw.client, Relay: relay, Server: nodes[0], Servers: nodes, BootPort: stormBootPort,
		Artifacts: art, NetbootRetries: stormNetbootRetries, Rediscover: true}
	return runStorm3(ctx, log, sw, site, auth, senv, machines, par)
}

// stormNodeArgs are node i's flags: DHCP on its boot interface, TFTP and
// boot HTTP on its address, its own copy of art (hard links).
func stormNodeArgs(art *sim.Artifacts, i int, ndir string) ([]string, error) {
	arts := filepath.Join(ndir, "artifacts")
	if err := linkDir(art.Dir, arts); err != nil {
		return nil, err
	}
	addr := site3Addr(i)
	return []string{"-id", fmt.Sprintf("n%d", i+1), "-data-dir", filepath.Join(ndir, "data"),
		"-api-addr", addr + ":7000", "-raft-addr", addr + ":7001",
		"-dhcp-interface", sim.ServerIface, "-boot-addr", fmt.Sprintf("%s:%d", addr, stormBootPort), "-tftp-addr", addr + ":69",
		"-artifact-dir", arts, "-log-level", "info"}, nil
}

// linkDir makes dst hold hard links to src's regular files.
func linkDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := os.Link(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// runStorm3 runs the storm, kills the leader halfway, checks the
// machines through a survivor and prints the BENCH line.
func runStorm3(ctx context.Context, log *slog.Logger, sw *dhcpSwitch, site *dhcpSite, auth siteAuth, env *sim.Env, machines []sim.Machine, par int) error {
	n := len(machines)
	cpu := newSiteCPU(site)
	began := time.Now()
	stopProgress := stormProgress(env, began, n)
	k := &leaderKiller{sw: sw, site: site, auth: auth, cpu: cpu, env: env, at: n / 2, began: began, killed: -1}
	kctx, stopKiller := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { k.run(kctx) })
	out := env.Storm(ctx, machines, par)
	stopKiller()
	wg.Wait()
	stopProgress()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	used := cpu.total()
	if k.err != nil {
		return k.err
	}
	if k.killed < 0 {
		return fmt.Errorf("the storm ended before the leader was killed")
	}
	// The leader's view: a follower's may lag behind it.
	leader, err := siteLeader(ctx, sw, site, auth)
	if err != nil {
		return err
	}
	api, err := auth.client(sw.nodes[leader], site3Addr(leader)+":7000", time.Minute)
	if err != nil {
		return err
	}
	if err := checkMachines(ctx, api, out); err != nil {
		return err
	}
	followerViews(ctx, sw, site, auth, leader)
	var hosts []stormHost
	for i, p := range site.procs {
		hosts = append(hosts, stormHost{fmt.Sprintf("n%d", i+1), sw.nodes[i], site3Addr(i) + ":7000", client.Pin{Fingerprint: auth.fp}, p})
	}
	stormReport(os.Stderr, out, env.Stats(), used, sw.client, hosts)
	lat := out.Latency()
	before, after := k.gaps()
	fmt.Printf("BENCH provision.storm nodes=3 machines=%d ok=%d failed=%d p50=%.2f p99=%.2f appliance_cpu=%.2f appliance_cpu_per_machine_ms=%.1f killed_at=%.1f longest_gap=%.2f gap_before_kill=%.2f\n",
		n, out.OK(), n-out.OK(), lat.P50.Seconds(), lat.P99.Seconds(), used.Seconds(),
		float64(used.Microseconds())/1000/float64(n), k.killedAt.Seconds(), after.Seconds(), before.Seconds())
	log.Debug("storm done", "machines", n, "wall", out.Wall)
	if out.OK() != n {
		return fmt.Errorf("%d of %d machines failed (see above); the nodes' logs: %s", n-out.OK(), n, keepLogs(site))
	}
	return nil
}

// keepLogs keeps every node's log (keepLogAs) and lists where they are.
func keepLogs(site *dhcpSite) []string {
	var kept []string
	for i, p := range site.procs {
		kept = append(kept, keepLogAs(p.log, fmt.Sprintf("n%d", i+1)))
	}
	return kept
}

// siteCPU adds up the CPU time of a site's nodes from its making: a
// node's last reading stands once it is dead.
type siteCPU struct {
	mu     sync.Mutex
	procs  []*benchProc
	start  []float64
	latest []float64
}

func newSiteCPU(site *dhcpSite) *siteCPU {
	c := &siteCPU{procs: site.procs, start: make([]float64, len(site.procs)), latest: make([]float64, len(site.procs))}
	for i := range c.procs {
		c.start[i] = c.read(i)
		c.latest[i] = c.start[i]
	}
	return c
}

// read is node i's CPU seconds now, or its last reading if it is gone.
func (c *siteCPU) read(i int) float64 {
	if s, err := cpuSeconds(c.procs[i].cmd.Process.Pid); err == nil && !c.procs[i].exited() {
		return s
	}
	return c.latest[i]
}

// update reads node i's CPU time (before it is killed).
func (c *siteCPU) update(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.latest[i] = c.read(i)
}

// total is the nodes' CPU time since newSiteCPU.
func (c *siteCPU) total() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var sum float64
	for i := range c.procs {
		c.latest[i] = c.read(i)
		sum += c.latest[i] - c.start[i]
	}
	return time.Duration(sum * float64(time.Second))
}

// leaderKiller SIGKILLs the site's leader once at machines have
// finished, and records when machines finished, to find the longest gap
// between two.
type leaderKiller struct {
	sw    *dhcpSwitch
	site  *dhcpSite
	auth  siteAuth
	cpu   *siteCPU
	env   *sim.Env
	at    int
	began time.Time

	killed   int           // the node killed, -1 if none
	killedAt time.Duration // from began
	finished []time.Duration
	err      error
}

// run samples the machines finished every 20 ms until ctx ends, and
// kills the leader when they reach k.at.
func (k *leaderKiller) run(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	last := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		done := k.env.Progress().Done
		for ; last < done; last++ {
			k.finished = append(k.finished, time.Since(k.began))
		}
		if k.killed < 0 && k.err == nil && done >= k.at {
			k.kill(ctx)
		}
	}
}

// followerViews says, on stderr, how many machines each running follower
// shows not provisioned right after the storm: how far its reads lag
// behind the leader's.
func followerViews(ctx context.Context, sw *dhcpSwitch, site *dhcpSite, auth siteAuth, leader int) {
	for i, p := range site.procs {
		if i == leader || p.exited() {
			continue
		}
		api, err := auth.client(sw.nodes[i], site3Addr(i)+":7000", time.Minute)
		var all []store.Machine
		if err == nil {
			err = api.List(ctx, "machines", &all)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "storm: n%d (a follower): list machines: %v\n", i+1, err)
			continue
		}
		behind := 0
		for _, m := range all {
			if m.State != store.StateProvisioned {
				behind++
			}
		}
		fmt.Fprintf(os.Stderr, "storm: n%d (a follower) shows %d of %d machines not provisioned right after the storm\n", i+1, behind, len(all))
	}
}

// siteLeader is the index of the site's leader, as the first running
// node that answers sees it.
func siteLeader(ctx context.Context, sw *dhcpSwitch, site *dhcpSite, auth siteAuth) (int, error) {
	var leader string
	for i, p := range site.procs {
		if p.exited() {
			continue
		}
		api, err := auth.client(sw.nodes[i], site3Addr(i)+":7000", 5*time.Second)
		if err != nil {
			return 0, err
		}
		if st, err := api.Cluster(ctx); err == nil && st.LeaderID != "" {
			leader = st.LeaderID
			break
		}
	}
	var i int
	if _, err := fmt.Sscanf(leader, "n%d", &i); err != nil || i < 1 || i > len(site.procs) {
		return 0, fmt.Errorf("no node names a leader (%q)", leader)
	}
	return i - 1, nil
}

// kill finds the leader and SIGKILLs it.
func (k *leaderKiller) kill(ctx context.Context) {
	i, err := siteLeader(ctx, k.sw, k.site, k.auth)
	if err != nil {
		k.err = fmt.Errorf("%w when %d machines have finished", err, k.at)
		return
	}
	leader := fmt.Sprintf("n%d", i+1)
	k.cpu.update(i)
	if err := k.site.procs[i].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		k.err = fmt.Errorf("kill the leader %s: %w", leader, err)
		return
	}
	k.killed, k.killedAt = i, time.Since(k.began)
	fmt.Fprintf(os.Stderr, "storm: %5.1f s: SIGKILLed the leader %s with %d machines finished\n", k.killedAt.Seconds(), leader, k.env.Progress().Done)
}

// gaps are the longest times in which no machine finished, before the
// kill (from the first machine's end) and after it (from the kill).
func (k *leaderKiller) gaps() (before, after time.Duration) {
	prev := time.Duration(-1)
	for _, f := range k.finished {
		switch {
		case f <= k.killedAt && prev >= 0:
			before = max(before, f-prev)
		case f > k.killedAt:
			after = max(after, f-max(prev, k.killedAt))
		}
		prev = f
	}
	return before, after
}
