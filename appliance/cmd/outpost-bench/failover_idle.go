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

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// benchRaftIdle counts a 3-node site's leadership changes while it is
// idle and every core of the host is busy: the site of dhcp.failover,
// with one busy loop per core (sh -c 'while :; do :; done', at the
// nodes' priority) for the duration. The first node's view of the
// cluster is read every 200 ms; a leader change is a new (term, leader)
// pair, and term_moves is how far the term moved (an election that
// elected no one moves it too). It prints
//
//	BENCH raft.idle nodes=3 seconds=<d> busy_loops=<n> leader_changes=<n> term_moves=<n>
func benchRaftIdle(ctx context.Context, log *slog.Logger, d time.Duration) error {
	return runDHCPBench(ctx, log, "raft-idle", func(t lab.T, dir string, _ map[string]string, applianced string) {
		sw := newDHCPSwitch(t, site3Nodes)
		site, err := startDHCPSite(t.Context(), sw, filepath.Join(dir, "site"), applianced)
		if err != nil {
			t.Fatal(err)
		}
		defer site.stop()
		api, _, _, err := waitNodeAPI(t.Context(), sw.nodes[0], site.procs[0], filepath.Join(dir, "site", "n1", "data"), site3Addr(0))
		if err != nil {
			t.Fatal(err)
		}
		stopBusy := busyLoops(runtime.NumCPU())
		defer stopBusy()
		type view struct {
			term   uint64
			leader string
		}
		var first, last view
		changes := 0
		for end := time.Now().Add(d); time.Now().Before(end) && !site.exited(); time.Sleep(200 * time.Millisecond) {
			st, err := api.Cluster(t.Context())
			if err != nil {
				fmt.Fprintf(os.Stderr, "raft.idle: cluster status: %v\n", err)
				continue
			}
			v := view{st.Term, st.LeaderID}
			switch {
			case first == view{}:
				first = v
			case v != last && v.leader != "":
				changes++
				fmt.Fprintf(os.Stderr, "raft.idle: %s: term %d, leader %q\n", time.Now().Format(time.TimeOnly), v.term, v.leader)
			}
			if v.leader != "" {
				last = v
			}
		}
		if site.exited() {
			t.Fatalf("a node exited; %s", site.logTail())
		}
		fmt.Printf("BENCH raft.idle nodes=3 seconds=%.0f busy_loops=%d leader_changes=%d term_moves=%d\n",
			d.Seconds(), runtime.NumCPU(), changes, last.term-first.term)
	})
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
