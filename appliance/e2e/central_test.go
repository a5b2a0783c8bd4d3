package e2e

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// centralStatus is what GET /v1/cluster answers: the node's own view.
type centralStatus struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Leader       string   `json:"leader"`
	AppliedIndex uint64   `json:"applied_index"`
	CommitIndex  uint64   `json:"commit_index"`
	Voters       []string `json:"voters"`
}

func clusterStatus(c *labsite.Central) (centralStatus, error) {
	var st centralStatus
	err := c.Do("GET", "/v1/cluster", nil, &st)
	return st, err
}

// TestReplicatedCentral: three centrald nodes form a Raft cluster; a site
// is created through a follower and syncs with the site's list of all
// three. While the site records events and orders are placed through
// every node, central's leader is killed: another takes over, and central
// ends with every event of the site exactly once and in order, every
// order applied at the site exactly once. The killed node comes back and
// catches up.
func TestReplicatedCentral(t *testing.T) {
	bin := centrald(t)
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	nodes := map[string]*labsite.Central{}
	nodes["c1"] = labsite.StartCentral(t, bin, addr(), "-raft-addr", addr(), "-node-id", "c1", "-heartbeat", "1s")
	for _, id := range []string{"c2", "c3"} {
		nodes[id] = nodes["c1"].Join(bin, addr(), addr(), id, "-heartbeat", "1s")
	}
	ids := []string{"c1", "c2", "c3"}
	leader := waitCentralLeader(t, nodes, ids)
	var follower string
	for _, id := range ids {
		if id != leader {
			follower = id
		}
	}
	// A site created through a follower: the request goes to the leader.
	credFile := nodes[follower].NewSite("rc")
	c := newCluster(t)
	n := c.addNode("n1", "")
	n.args = append(n.args, nodes["c1"].SyncArgs(nodes["c1"].URL+","+nodes["c2"].URL+","+nodes["c3"].URL, "rc", credFile)...)
	c.start(n)
	c.token = c.waitAdminToken(n)
	c.waitFormed(n)
	waitConnected(t, nodes[follower], "rc", true)
	// Its BMC does not answer: the orders' jobs fail, which is beside
	// the point here.
	m1 := map[string]any{"id": "m1", "interfaces": []map[string]any{{"mac": "02:00:00:00:5e:02"}},
		"bmc": map[string]any{"address": "127.0.0.1:9", "driver": "ipmi", "username": "admin", "password": "never-shown-rc"}}
	if err := nodes[follower].Do("PUT", "/v1/sites/rc/machines/m1", m1, nil); err != nil {
		t.Fatal(err)
	}

	// Events recorded at the site, and orders placed through every
	// central node in turn, until told to stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	placed := map[string]bool{}
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.do(t.Context(), n, "POST", "/v1/events", store.Event{Kind: "test.central", Message: fmt.Sprintf("e%d", i)})
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			cen := nodes[ids[i%3]]
			if !cen.Proc.Running() {
				continue
			}
			id := fmt.Sprintf("o%d", i)
			// An order whose answer is lost in the failover may or may
			// not be placed; only acknowledged ones are counted.
			if err := cen.Do("PUT", "/v1/sites/rc/orders/"+id, map[string]any{"action": "power_on", "machine_id": "m1"}, nil); err == nil {
				mu.Lock()
				placed[id] = true
				mu.Unlock()
			}
		}
	}()
	time.Sleep(3 * time.Second)
	t.Logf("killing central's leader %s", leader)
	nodes[leader].Proc.Kill()
	newLeader := waitCentralLeader(t, nodes, ids)
	t.Logf("%s leads now", newLeader)
	time.Sleep(4 * time.Second)
	close(stop)
	wg.Wait()

	last := lastSiteSeq(t, c, n)
	cen := nodes[newLeader]
	cen.WaitStored(t.Context(), "rc", last, 3*time.Minute)
	got := cen.Events("rc")
	if uint64(len(got)) < last {
		t.Errorf("central has %d events, the site %d", len(got), last)
	}
	created := map[string]int{}
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Data.Seq != e.Seq {
			t.Fatalf("central's event %d has seq %d (site seq %d): not dense, or out of order", i, e.Seq, e.Data.Seq)
		}
		if e.Data.Kind == "order.created" {
			created[fmt.Sprint(e.Data.Fields["order"])]++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(placed) == 0 {
		t.Fatal("no order was acknowledged")
	}
	// Every acknowledged order reaches the site, once.
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		var page struct {
			Items []store.Order `json:"items"`
		}
		if err := c.get(n, "/v1/orders?limit=10000", &page); err != nil {
			return err
		}
		at := map[string]bool{}
		for _, o := range page.Items {
			at[o.ID] = true
		}
		for id := range placed {
			if !at[id] {
				return fmt.Errorf("order %s is not at the site", id)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	for id, k := range created {
		if k != 1 {
			t.Errorf("order %s was created %d times at the site", id, k)
		}
	}
	t.Logf("%d events and %d acknowledged orders crossed a central failover", last, len(placed))

	// The old leader comes back as a follower and catches up.
	old := nodes[leader]
	old.Restart()
	err = labsite.Poll(t.Context(), time.Minute, func() error {
		lst, err := clusterStatus(nodes[newLeader])
		if err != nil {
			return err
		}
		st, err := clusterStatus(old)
		if err != nil {
			return err
		}
		if st.State != "Follower" || st.AppliedIndex < lst.CommitIndex {
			return fmt.Errorf("%s is %s at %d, the leader at %d", leader, st.State, st.AppliedIndex, lst.CommitIndex)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	for _, id := range ids {
		for _, f := range []string{nodes[id].Proc.Stderr, nodes[id].Proc.Stdout} {
			if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("never-shown-rc")) {
				t.Errorf("the BMC password is in %s", f)
			}
		}
	}
	// Its API answers through the leader.
	if stored, err := old.StoredSeq("rc"); err != nil || stored < last {
		t.Errorf("through the restarted node: stored %d (%v), want at least %d", stored, err, last)
	}
}

// waitCentralLeader returns the id of the running node among ids that
// leads all three voters.
func waitCentralLeader(t *testing.T, nodes map[string]*labsite.Central, ids []string) string {
	t.Helper()
	var id string
	err := labsite.Poll(t.Context(), time.Minute, func() error {
		for _, n := range ids {
			if !nodes[n].Proc.Running() {
				continue
			}
			if st, err := clusterStatus(nodes[n]); err == nil && st.State == "Leader" && len(st.Voters) == 3 {
				id = st.ID
				return nil
			}
		}
		return fmt.Errorf("no leader of 3 voters among the running nodes")
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// lastSiteSeq is the site's newest event, read linearizably.
func lastSiteSeq(t *testing.T, c *cluster, n *node) uint64 {
	t.Helper()
	var page struct {
		LastSeq uint64 `json:"last_seq"`
	}
	if err := c.get(n, "/v1/events?limit=1&consistent=true", &page); err != nil {
		t.Fatal(err)
	}
	return page.LastSeq
}
