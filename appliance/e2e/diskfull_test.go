package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// fillFS fills dir's filesystem with dir/fill.
func fillFS(t *testing.T, dir string) { fill(t, filepath.Join(dir, "fill")) }

// freeFS removes fillFS's file.
func freeFS(t *testing.T, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
}

// diskFullSize is each node's data filesystem: room for the test's
// writes many times over, and little enough to fill at once.
const diskFullSize = "96m"

// startDiskCluster starts a site of size nodes, each with its data
// directory on a small filesystem of its own.
func startDiskCluster(t *testing.T, size int) *cluster {
	c := newCluster(t)
	n1 := c.addNode("n1", "")
	lab.MountTmpfs(t, n1.dataDir, diskFullSize)
	c.start(n1)
	c.token = c.waitAdminToken(n1)
	for i := 2; i <= size; i++ {
		n := c.addNode(fmt.Sprintf("n%d", i), n1.apiURL)
		lab.MountTmpfs(t, n.dataDir, diskFullSize)
		c.start(n)
	}
	c.waitFormed(c.nodes...)
	return c
}

// waitAcked waits for w to have at least n writes acknowledged.
func (c *cluster) waitAcked(w *writers, n int, what string) {
	c.t.Helper()
	c.waitFor(90*time.Second, what, func() error {
		if got := w.ackedCount(); got < n {
			return fmt.Errorf("%d writes acknowledged, want %d", got, n)
		}
		return nil
	})
}

// writeErrors reads outpost_store_write_errors_total from n's metrics.
func (c *cluster) writeErrors(n *node) (float64, error) {
	resp, err := c.http.Get(n.apiURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`(?m)^outpost_store_write_errors_total (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0, fmt.Errorf("no outpost_store_write_errors_total in %s's metrics", n.id)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// eventKinds are the kinds of the events n reads, with the node field
// of each.
func (c *cluster) eventKinds(n *node) ([]string, error) {
	var kinds []string
	var since uint64
	for {
		var page struct {
			Events []store.Event `json:"events"`
		}
		if err := c.get(n, fmt.Sprintf("/v1/events?since=%d&limit=1000", since), &page); err != nil {
			return nil, err
		}
		if len(page.Events) == 0 {
			return kinds, nil
		}
		for _, e := range page.Events {
			if strings.HasPrefix(e.Kind, "node.") {
				kinds = append(kinds, e.Kind+"/"+e.Fields["node"])
			}
		}
		since = page.Events[len(page.Events)-1].Seq
	}
}

// checkAcked fails the test if a node lacks an acknowledged write.
func (c *cluster) checkAcked(acked map[string]string) {
	c.t.Helper()
	for _, n := range c.nodes {
		c.waitFor(60*time.Second, "every acknowledged write on "+n.id, func() error {
			ms, err := c.machines(n, false)
			if err != nil {
				return err
			}
			return missing(ms, acked)
		})
	}
}

// TestDiskFullLeader fills the disk of a three-node site's leader under
// writes: it stops leading and says why (its status, metric and an
// event the new leader records), the others go on acknowledging writes,
// and once space returns it catches up without a restart; no write
// acknowledged is lost.
func TestDiskFullLeader(t *testing.T) {
	c := startDiskCluster(t, 3)
	full := c.node(c.waitFormed(c.nodes...))
	others := slices.DeleteFunc(slices.Clone(c.nodes), func(n *node) bool { return n == full })
	w := startWriters(c, 4, 6000)
	defer w.abort()
	c.waitAcked(w, 50, "writes before the fill")

	fillFS(t, full.dataDir)
	t.Logf("filled %s's disk with %d writes acknowledged", full.id, w.ackedCount())
	var newLeader string
	c.waitFor(60*time.Second, "a healthy node to lead", func() error {
		st, err := c.status(others[0])
		if err != nil {
			return err
		}
		if st.LeaderID == "" || st.LeaderID == full.id {
			return fmt.Errorf("%s sees leader %q", others[0].id, st.LeaderID)
		}
		newLeader = st.LeaderID
		return nil
	})
	c.waitFor(60*time.Second, full.id+" to say it cannot write", func() error {
		st, err := c.status(full)
		if err != nil {
			return err
		}
		if !strings.Contains(st.WriteProblem, "no space left") || st.Healthy || st.State == "Leader" {
			return fmt.Errorf("%s: state %s, write_problem %q, healthy %v", full.id, st.State, st.WriteProblem, st.Healthy)
		}
		return nil
	})
	if n, err := c.writeErrors(full); err != nil || n == 0 {
		t.Errorf("%s's outpost_store_write_errors_total: %v, %v; want > 0", full.id, n, err)
	}
	at := w.ackedCount()
	c.waitAcked(w, at+100, "writes while "+full.id+"'s disk is full")
	c.waitEvent(c.node(newLeader), "node.write_failing/"+full.id)

	freeFS(t, full.dataDir)
	c.waitFor(60*time.Second, full.id+" to write and catch up", func() error {
		st, err := c.status(full)
		if err != nil {
			return err
		}
		lead, err := c.status(c.node(newLeader))
		if err != nil {
			return err
		}
		if st.WriteProblem != "" || !st.Healthy || st.AppliedIndex+50 < lead.AppliedIndex {
			return fmt.Errorf("%s: write_problem %q, healthy %v, applied %d of the leader's %d",
				full.id, st.WriteProblem, st.Healthy, st.AppliedIndex, lead.AppliedIndex)
		}
		return nil
	})
	w.stop()
	if !full.running() {
		t.Fatalf("%s exited: %v", full.id, full.proc.err)
	}
	for _, msg := range w.refusals() {
		t.Errorf("write refused: %s", msg)
	}
	c.checkAcked(w.ackedWrites())
	c.waitEvent(full, "node.write_recovered/"+full.id)
}

// waitEvent waits for n to hold an event of kind/node (eventKinds).
func (c *cluster) waitEvent(n *node, kind string) {
	c.t.Helper()
	c.waitFor(30*time.Second, "event "+kind+" on "+n.id, func() error {
		kinds, err := c.eventKinds(n)
		if err != nil {
			return err
		}
		if !slices.Contains(kinds, kind) {
			return fmt.Errorf("none among %v", kinds)
		}
		return nil
	})
}

// TestDiskFullSingleNode fills the disk of a one-node site under
// writes: its writes fail while it is full (the API answers 503), and
// once space returns it leads and acknowledges again, without a restart;
// no write acknowledged is lost.
func TestDiskFullSingleNode(t *testing.T) {
	c := startDiskCluster(t, 1)
	n1 := c.nodes[0]
	w := startWriters(c, 4, 6000)
	defer w.abort()
	c.waitAcked(w, 50, "writes before the fill")

	fillFS(t, n1.dataDir)
	c.waitFor(60*time.Second, n1.id+" to say it cannot write", func() error {
		st, err := c.status(n1)
		if err != nil {
			return err
		}
		if !strings.Contains(st.WriteProblem, "no space left") || st.Healthy {
			return fmt.Errorf("state %s, write_problem %q, healthy %v", st.State, st.WriteProblem, st.Healthy)
		}
		return nil
	})
	// Writes sent from now on fail. (A few may still be acknowledged:
	// bbolt reuses pages it freed, so a write can find room on a full
	// filesystem; one acknowledged is durable, and checkAcked finds it.)
	retried := w.retried.Load()
	c.waitFor(90*time.Second, "writes to fail while the disk is full", func() error {
		if n := w.retried.Load(); n < retried+3 {
			return fmt.Errorf("%d writes failed since the disk filled", n-retried)
		}
		return nil
	})
	code, body, err := c.do(t.Context(), n1, http.MethodPut, "/v1/machines/while-full", newMachine("while-full", "02:e2:ee:00:00:01"))
	// 503: the disk is full, or (the node having stepped down when it
	// could not append) there is no leader; either way nothing written.
	if err != nil || code != http.StatusServiceUnavailable {
		t.Errorf("a write while the disk is full: %d %s (%v), want 503", code, body, err)
	}

	freeFS(t, n1.dataDir)
	c.waitAcked(w, w.ackedCount()+100, "writes once space returned")
	w.stop()
	if !n1.running() {
		t.Fatalf("%s exited: %v", n1.id, n1.proc.err)
	}
	st, err := c.status(n1)
	if err != nil || st.WriteProblem != "" || st.State != "Leader" {
		t.Errorf("after space returned: %+v (%v), want a leader with no write problem", st, err)
	}
	c.checkAcked(w.ackedWrites())
	c.waitEvent(n1, "node.write_recovered/"+n1.id)
}
