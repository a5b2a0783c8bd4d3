package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/raftnode"
)

// A Raft cluster of the shared core's nodes (internal/raftnode) on
// 127.0.0.1, each applying to its own store through the state machine.

// clusterTimeout bounds every wait of the cluster test: elections,
// commits, catching up. Generous, for a loaded machine.
const clusterTimeout = 30 * time.Second

type clusterNode struct {
	id, dir, addr string
	db            *store.DB
	node          *raftnode.Node // nil while stopped
}

type testCluster struct {
	t     *testing.T
	nodes []*clusterNode
}

func clusterTuning(c *raft.Config) {
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.MaxAppendEntries = 64
	c.SnapshotThreshold = 1 << 30 // only when the test asks
	c.SnapshotInterval = time.Hour
	c.TrailingLogs = 4
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newTestCluster starts n nodes: the first bootstraps a cluster, the
// others join it as voters.
func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t}
	t.Cleanup(c.shutdown)
	first := c.addNode("node1")
	first.start(t, true)
	for i := 1; i < n; i++ {
		c.join(c.addNode(fmt.Sprintf("node%d", i+1)))
	}
	return c
}

// addNode creates a node's store and directory without starting it.
func (c *testCluster) addNode(id string) *clusterNode {
	t := c.t
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "site.db"))
	if err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{id: id, dir: dir, addr: freeAddr(t), db: db}
	c.nodes = append(c.nodes, n)
	return n
}

// start starts the node's Raft over its store, log and snapshots.
func (n *clusterNode) start(t *testing.T, bootstrap bool) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", n.id)
	node, err := raftnode.Open(raftnode.Config{
		ID: n.id, Dir: filepath.Join(n.dir, "raft"), BindAddr: n.addr, Bootstrap: bootstrap,
		Tuning: clusterTuning, Log: log,
	}, NewStateMachine(n.db, log))
	if err != nil {
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.node = node
}

// stop stops the node's Raft (handing leadership over if it leads); its
// store and Raft directory stay for a restart.
func (c *testCluster) stop(n *clusterNode) {
	if err := n.node.Close(); err != nil {
		c.t.Fatalf("stop %s: %v", n.id, err)
	}
	n.node = nil
}

// join starts n and makes it a voter, through whichever node leads.
func (c *testCluster) join(n *clusterNode) {
	c.t.Helper()
	n.start(c.t, false)
	var err error
	waitFor(c.t, clusterTimeout, "add voter "+n.id, func() bool {
		ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
		defer cancel()
		err = c.leader().node.AddVoter(ctx, n.id, n.addr)
		return err == nil
	})
}

func (c *testCluster) shutdown() {
	for _, n := range c.nodes {
		if n.node != nil {
			if err := n.node.Close(); err != nil {
				c.t.Errorf("stop %s: %v", n.id, err)
			}
		}
		if err := n.db.Close(); err != nil {
			c.t.Errorf("close store of %s: %v", n.id, err)
		}
	}
}

func (c *testCluster) live() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.node != nil {
			out = append(out, n)
		}
	}
	return out
}

// leader waits for a live node to lead, ready (it has applied everything
// committed before its term).
func (c *testCluster) leader() *clusterNode {
	c.t.Helper()
	var leader *clusterNode
	waitFor(c.t, clusterTimeout, "a ready leader", func() bool {
		for _, n := range c.live() {
			if n.node.IsReady() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// apply commits a command through the current leader, following leader
// changes, and returns its result and log index.
func (c *testCluster) apply(typ Type, payload any) (Result, uint64) {
	c.t.Helper()
	cmd := encodeCmd(c.t, typ, payload)
	var (
		idx  uint64
		resp any
		err  error
	)
	waitFor(c.t, clusterTimeout, fmt.Sprintf("commit command %d", typ), func() bool {
		ctx, cancel := context.WithTimeout(c.t.Context(), 5*time.Second)
		defer cancel()
		idx, resp, err = c.leader().node.Propose(ctx, cmd)
		// A lost leadership may still have committed the command: every
		// command used here is idempotent, so proposing again is safe.
		if err != nil && !errors.Is(err, raftnode.ErrNotLeader) && !errors.Is(err, raftnode.ErrUnknownOutcome) &&
			!errors.Is(err, context.DeadlineExceeded) {
			c.t.Fatalf("propose: %v", err)
		}
		return err == nil
	})
	r, ok := resp.(Result)
	if !ok {
		c.t.Fatalf("result %T, want Result", resp)
	}
	if r.Err != nil || r.Index != idx {
		c.t.Fatalf("command %d: result %+v (err %v), log index %d", typ, r, r.Err, idx)
	}
	return r, idx
}

// converge waits until every node in nodes has applied idx and checks that
// their stores hold the same content.
func (c *testCluster) converge(idx uint64, nodes ...*clusterNode) storeState {
	t := c.t
	t.Helper()
	for _, n := range nodes {
		ctx, cancel := context.WithTimeout(t.Context(), clusterTimeout)
		err := n.node.WaitApplied(ctx, idx)
		cancel()
		if err != nil {
			t.Fatalf("%s applied %d, not %d: %v", n.id, n.db.AppliedIndex(), idx, err)
		}
	}
	first := readState(t, nodes[0].db)
	firstRaw := withApplied(rawDump(t, nodes[0].db), 0)
	for _, n := range nodes[1:] {
		s := readState(t, n.db)
		s.Applied = first.Applied // may differ by entries that change nothing
		if diff := cmp.Diff(first, s); diff != "" {
			t.Errorf("%s and %s differ (-%s +%s):\n%s", nodes[0].id, n.id, nodes[0].id, n.id, diff)
		}
		if diff := cmp.Diff(firstRaw, withApplied(rawDump(t, n.db), 0)); diff != "" {
			t.Errorf("%s and %s differ in raw content (-%s +%s):\n%s", nodes[0].id, n.id, nodes[0].id, n.id, diff)
		}
	}
	return first
}

func machineIDs(s storeState) []string {
	var ids []string
	for _, m := range s.Machines {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestCluster(t *testing.T) {
	c := newTestCluster(t, 3)

	// Writes on the leader reach every store.
	c.apply(PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	c.apply(PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0})
	c.apply(PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0})
	for i := range 5 {
		id := fmt.Sprintf("m%d", i+1)
		c.apply(PutMachine, Put[store.Machine]{
			Object: fxMachine(id, fmt.Sprintf("02:00:00:00:02:%02x", i+1)), Time: ts0,
			Events: []store.Event{{Kind: "machine.created", MachineID: id}},
		})
	}
	c.apply(PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: ts0})
	_, idx := c.apply(AppendEvents, Events{Time: ts0, Events: []store.Event{{Kind: "cluster.test"}}})
	s := c.converge(idx, c.nodes...)
	if diff := cmp.Diff([]string{"m1", "m2", "m3", "m4", "m5"}, machineIDs(s)); diff != "" {
		t.Errorf("machines (-want +got):\n%s", diff)
	}
	if len(s.Subnets) != 1 || len(s.Templates) != 1 || len(s.Workflows) != 1 || len(s.MACs) != 5 || len(s.Events) < 6 {
		t.Errorf("content after the first writes: %d subnets, %d templates, %d workflows, %d MACs, %d events",
			len(s.Subnets), len(s.Templates), len(s.Workflows), len(s.MACs), len(s.Events))
	}

	// The leader goes away; a new one is elected and takes writes.
	old := c.leader()
	c.stop(old)
	oldApplied := old.db.AppliedIndex()
	next := c.leader()
	if next == old {
		t.Fatal("the stopped node still leads")
	}
	t.Logf("leader %s stopped at index %d; %s leads", old.id, oldApplied, next.id)
	c.apply(PutMachine, Put[store.Machine]{Object: fxMachine("m6", "02:00:00:00:02:06"), Time: ts1})
	c.apply(DeleteMachine, Delete{Key: "m2", Time: ts1})
	_, idx = c.apply(PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts1})
	s = c.converge(idx, c.live()...)
	if diff := cmp.Diff([]string{"m1", "m3", "m4", "m5", "m6"}, machineIDs(s)); diff != "" {
		t.Errorf("machines after failover (-want +got):\n%s", diff)
	}
	if len(s.Images) != 1 {
		t.Errorf("%d images after failover, want 1", len(s.Images))
	}
	if got := old.db.AppliedIndex(); got != oldApplied {
		t.Errorf("the stopped node's store moved from %d to %d", oldApplied, got)
	}

	// The old leader comes back over its own store and log: Raft replays
	// the log, the state machine skips what the store already has, and
	// the node catches up.
	old.start(t, false)
	_, idx = c.apply(CreateToken, Put[store.Token]{Object: fxToken("after-restart"), Time: ts1})
	s = c.converge(idx, c.nodes...)
	if len(s.Tokens) != 1 || len(s.Machines) != 5 {
		t.Errorf("after restart: %d tokens, %d machines; want 1 and 5", len(s.Tokens), len(s.Machines))
	}

	// A new node joins after the leader compacted its log: it receives a
	// snapshot (StateMachine.Restore) and then the log after it.
	if err := c.leader().node.Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	for i := range 8 { // more than TrailingLogs past the snapshot
		c.apply(AppendEvents, Events{Time: ts1, Events: []store.Event{{Kind: "filler", Message: fmt.Sprint(i)}}})
	}
	if err := c.leader().node.Snapshot(); err != nil {
		t.Fatalf("second snapshot: %v", err)
	}
	joiner := c.addNode("node4")
	c.join(joiner)
	_, idx = c.apply(PutSubnet, Put[store.Subnet]{Object: fxSubnet("joined"), Time: ts1})
	s = c.converge(idx, c.nodes...)
	if len(s.Subnets) != 2 || len(s.Events) < 14 {
		t.Errorf("after join: %d subnets, %d events", len(s.Subnets), len(s.Events))
	}
	snaps, err := os.ReadDir(filepath.Join(joiner.dir, "raft", "snapshots"))
	if err != nil || len(snaps) == 0 {
		t.Errorf("the joining node received no snapshot (%v): it was not restored through StateMachine.Restore", err)
	}
}
