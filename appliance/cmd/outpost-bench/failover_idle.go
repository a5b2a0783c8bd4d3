package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
)

const (
	// idleRounds is how many times raft.idle runs each setting,
	// interleaved.
	idleRounds = 2
	// raftIdleSettle is how long a site of raft.idle runs after it formed
	// before it is watched.
	raftIdleSettle = 15 * time.Second
)

// raftSetting is a node setting raft.idle and dhcp.failover compare:
// applianced's Raft heartbeat timeout, its probe of a silent leader
// ("0": none) and its nice value.
type raftSetting struct {
	name      string
	heartbeat string
	probe     string
	nice      int
}

// oldDefaults is applianced's Raft setting before the leader probe:
// LANTiming at 250 ms, at nice -10; newDefaults is today's (1 s, the
// probe after 250 ms of silence).
var (
	oldDefaults = raftSetting{"hb250ms_nice-10", "250ms", "0", -10}
	newDefaults = raftSetting{"hb1s_probe250ms_nice-10", "1s", "250ms", -10}
)

// idleSettings are the settings raft.idle compares.
var idleSettings = []raftSetting{oldDefaults, newDefaults}

// wrap writes, under dir, a script that runs applianced with the
// setting's flags after the site's, and returns its path.
func (s raftSetting) wrap(dir, applianced string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "applianced.sh")
	script := fmt.Sprintf("#!/bin/sh\nexec %s \"$@\" -raft-heartbeat-timeout %s -raft-leader-probe %s -nice %d\n",
		applianced, s.heartbeat, s.probe, s.nice)
	return bin, os.WriteFile(bin, []byte(script), 0o755)
}

// benchRaftIdle counts a 3-node site's leadership changes while it is
// idle and every core of the host is busy: the site of dhcp.failover,
// with one busy loop per core (sh -c 'while :; do :; done', at nice 0)
// for the duration, from raftIdleSettle after the site formed, once per setting of idleSettings and round,
// interleaved. The first node's view of the cluster is read every
// 200 ms; a leader change is a new (term, leader) pair, and term_moves
// is how far the term moved (an election that elected no one moves it
// too). It prints, for each setting, the sums over its rounds:
//
//	BENCH raft.idle nodes=3 setting=<name> seconds=<total> busy_loops=<n> leader_changes=<n> term_moves=<n> runs=2
func benchRaftIdle(ctx context.Context, log *slog.Logger, d time.Duration) error {
	return runDHCPBench(ctx, log, "raft-idle", func(t lab.T, dir string, _ map[string]string, applianced string) {
		sw := newDHCPSwitch(t, site3Nodes)
		changes, moves := map[string]int{}, map[string]uint64{}
		for r := range idleRounds {
			for _, s := range idleSettings {
				runDir := filepath.Join(dir, fmt.Sprintf("%s-%d", s.name, r+1))
				c, m, err := idleRun(t.Context(), sw, runDir, applianced, s, d)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(os.Stderr, "raft.idle: %s round %d: %d leader changes, term moved %d\n", s.name, r+1, c, m)
				changes[s.name] += c
				moves[s.name] += m
			}
		}
		for _, s := range idleSettings {
			fmt.Printf("BENCH raft.idle nodes=3 setting=%s seconds=%.0f busy_loops=%d leader_changes=%d term_moves=%d runs=%d\n",
				s.name, d.Seconds()*idleRounds, runtime.NumCPU(), changes[s.name], moves[s.name], idleRounds)
		}
	})
}

// idleRun starts a site under dir with setting s, busies every core for
// d and counts the leader changes the first node sees.
func idleRun(ctx context.Context, sw *dhcpSwitch, dir, applianced string, s raftSetting, d time.Duration) (int, uint64, error) {
	bin, err := s.wrap(dir, applianced)
	if err != nil {
		return 0, 0, err
	}
	site, err := startDHCPSite(ctx, sw, dir, bin)
	if err != nil {
		return 0, 0, err
	}
	defer site.stop()
	api, _, _, err := waitNodeAPI(ctx, sw.nodes[0], site.procs[0], filepath.Join(dir, "n1", "data"), site3Addr(0))
	if err != nil {
		return 0, 0, err
	}
	// Joining, catching up and the subnet's put are not idle: the site
	// settles first.
	time.Sleep(raftIdleSettle)
	stopBusy := busyLoops(runtime.NumCPU())
	defer stopBusy()
	changes, moved := watchLeaders(ctx, api, site, d)
	if site.exited() {
		return 0, 0, fmt.Errorf("a node exited; %s", site.logTail())
	}
	return changes, moved, nil
}

// watchLeaders reads api's view of the cluster every 200 ms for d and
// counts the new (term, leader) pairs, and how far the term moved.
func watchLeaders(ctx context.Context, api *client.Client, site *dhcpSite, d time.Duration) (int, uint64) {
	type view struct {
		term   uint64
		leader string
	}
	var first, last view
	changes := 0
	for end := time.Now().Add(d); time.Now().Before(end) && !site.exited() && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
		st, err := api.Cluster(ctx)
		if err != nil || st.LeaderID == "" {
			continue
		}
		v := view{st.Term, st.LeaderID}
		switch {
		case first == view{}:
			first = v
		case v != last:
			changes++
			fmt.Fprintf(os.Stderr, "raft.idle: %s: term %d, leader %q\n", time.Now().Format(time.TimeOnly), v.term, v.leader)
		}
		last = v
	}
	return changes, last.term - first.term
}

// busyLoops starts n shell busy loops and returns what stops them.
func busyLoops(n int) func() {
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if c.Start() == nil {
			cmds = append(cmds, c)
		}
	}
	return func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
}
