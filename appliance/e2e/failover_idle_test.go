package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// idleContacts is how many distinct contacts from its leader each
// follower must report while the host's cores are busy.
const idleContacts = 40

// TestFailoverIdleSiteKeepsLeader runs a 3-node site of applianced
// processes with their default Raft settings, idle while one busy loop
// per core competes with them, until each follower has reported
// idleContacts new contacts from its leader (heartbeats, every 100 to
// 200 ms). No node may see the leadership move meanwhile: the same leader
// and term everywhere, outpost_raft_leader_changes_total unchanged on
// every node, and no probe of the leader's port refused.
func TestFailoverIdleSiteKeepsLeader(t *testing.T) {
	s := startNetSite(t, 3)
	leader := s.waitFormed(s.nodes...)
	term := map[string]uint64{}
	changes := map[string]float64{}
	for _, n := range s.nodes {
		st, err := s.status(n)
		if err != nil {
			t.Fatal(err)
		}
		term[n.id] = st.Term
		changes[n.id] = leaderChanges(t, s, n)
	}

	stop := busyLoops(t, runtime.NumCPU())
	last, seen := map[string]string{}, map[string]int{}
	s.waitFor(3*time.Minute, fmt.Sprintf("%d contacts from the leader at each follower", idleContacts), func() error {
		for _, n := range s.nodes {
			if n.id == leader {
				continue
			}
			st, err := s.status(n)
			if err != nil {
				return err
			}
			if st.LastContact != last[n.id] {
				last[n.id] = st.LastContact
				seen[n.id]++
			}
			if seen[n.id] < idleContacts {
				return fmt.Errorf("%s: %d contacts", n.id, seen[n.id])
			}
		}
		return nil
	})
	stop()

	for _, n := range s.nodes {
		st, err := s.status(n)
		if err != nil {
			t.Fatal(err)
		}
		if st.LeaderID != leader || st.Term != term[n.id] {
			t.Errorf("%s: leader %q in term %d, want %q in term %d: leadership moved while idle", n.id, st.LeaderID, st.Term, leader, term[n.id])
		}
		if got := leaderChanges(t, s, n); got != changes[n.id] {
			t.Errorf("%s: outpost_raft_leader_changes_total %v, want %v", n.id, got, changes[n.id])
		}
		if got := siteMetric(t, s, n, refusedProbes); got != 0 {
			t.Errorf("%s: %s %v, want 0", n.id, refusedProbes, got)
		}
	}
}

// refusedProbes is the metric of a node's probes that found no leader
// listening.
const refusedProbes = `outpost_raft_leader_probe_total{verdict="refused"}`

// leaderChanges reads outpost_raft_leader_changes_total from n's metrics.
func leaderChanges(t *testing.T, s *netSite, n *node) float64 {
	t.Helper()
	return siteMetric(t, s, n, "outpost_raft_leader_changes_total")
}

// siteMetric reads the sample name (with its labels) from n's metrics; a
// counter with labels that has not been seen reads 0.
func siteMetric(t *testing.T, s *netSite, n *node, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	code, raw, err := s.do(ctx, n, http.MethodGet, "/metrics", nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s: GET /metrics: %d %v", n.id, code, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", n.id, line, err)
			}
			return f
		}
	}
	if strings.Contains(name, "{") {
		return 0
	}
	t.Fatalf("%s: no %s in its metrics", n.id, name)
	return 0
}

// busyLoops starts n shell busy loops, killed when the test ends or when
// the function returned is called.
func busyLoops(t *testing.T, n int) (stop func()) {
	var cmds []*exec.Cmd
	for range n {
		c := exec.Command("sh", "-c", "while :; do :; done")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	done := false
	stop = func() {
		if done {
			return
		}
		done = true
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}
	t.Cleanup(stop)
	return stop
}
