package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/syncproto"
)

type testNode struct {
	id, dir, addr string
	db            *store.DB
	node          *Node
}

func fastRaft(c *raft.Config) {
	// Short enough for quick elections, long enough that a leader on a
	// loaded machine (tests run with -race on two shared cores) keeps
	// its lease.
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30 // only when the test asks
	c.TrailingLogs = 2
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// start opens (or reopens) tn's store and node.
func (tn *testNode) start(t *testing.T, bootstrap bool) {
	t.Helper()
	db, err := store.Open(filepath.Join(tn.dir, "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	ident, err := pki.LoadIdentity(tn.dir, tn.id)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	n, err := Open(Config{Config: raftnode.Config{ID: tn.id, Dir: filepath.Join(tn.dir, "raft"), BindAddr: tn.addr,
		Bootstrap: bootstrap, Tuning: fastRaft, Log: testLog(t).With("node", tn.id)}, APIURL: "http://" + tn.addr, Identity: ident}, db)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	tn.db, tn.node = db, n
}

func (tn *testNode) stop() {
	if tn.node != nil {
		tn.node.Close()
		tn.db.Close()
		tn.node, tn.db = nil, nil
	}
}

// cluster starts n nodes over mutual TLS, the first bootstrapped, the
// others joined as a node joins through the API: with the key file of
// the first (its CA), the members it names trusted until the log brings
// their records, and added as voters pinned to their keys.
func cluster(t *testing.T, n int) []*testNode {
	t.Helper()
	nodes := make([]*testNode, n)
	for i := range nodes {
		nodes[i] = &testNode{id: fmt.Sprintf("c%d", i+1), dir: t.TempDir(), addr: centraltest.FreeAddr(t)}
	}
	t.Cleanup(func() {
		for _, tn := range nodes {
			tn.stop()
		}
	})
	nodes[0].start(t, true)
	waitLeader(t, nodes)
	key, err := os.ReadFile(store.KeyFile(filepath.Join(nodes[0].dir, "central.db")))
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range nodes[1:] {
		if err := os.WriteFile(store.KeyFile(filepath.Join(tn.dir, "central.db")), key, 0o600); err != nil {
			t.Fatal(err)
		}
		tn.start(t, false)
		_, members, err := waitLeader(t, nodes).node.Issue(tn.id, tn.node.Identity().PublicKeyDER(), tn.addr, "http://"+tn.addr)
		if err != nil {
			t.Fatal(err)
		}
		tn.node.SetJoinTrust(members)
		m := &store.Member{ID: tn.id, RaftAddr: tn.addr, APIURL: "http://" + tn.addr, Fingerprint: tn.node.Identity().Fingerprint()}
		// Adding a voter again is a no-op: retry on whichever node
		// leads if leadership moves in the middle.
		deadline := time.Now().Add(30 * time.Second)
		for err := errors.New("not yet"); err != nil; {
			if err = waitLeader(t, nodes).node.AddVoter(t.Context(), m); err != nil && time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	return nodes
}

func waitLeader(t *testing.T, nodes []*testNode) *testNode {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, tn := range nodes {
			if tn.node != nil && tn.node.IsLeader() {
				return tn
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader")
	return nil
}

// waitConverged waits until every running node has applied what the
// leader has, and returns the leader's applied index.
func waitConverged(t *testing.T, leader *testNode, nodes []*testNode) {
	t.Helper()
	want := leader.node.raft.Status().LastIndex
	deadline := time.Now().Add(20 * time.Second)
	for _, tn := range nodes {
		for tn.node != nil && tn.db.AppliedIndex() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%s applied %d, the leader is at %d", tn.id, tn.db.AppliedIndex(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// onLeader runs change on the ready leader, and again on the next one
// while the leader changes under it (store.ErrNotApplied: the change may
// or may not be applied, so only changes safe to repeat go through here).
// It returns the node that answered and its answer.
func onLeader(t *testing.T, nodes []*testNode, change func(db *store.DB) error) (*testNode, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		leader := waitLeader(t, nodes)
		err := change(leader.db)
		if !errors.Is(err, store.ErrNotApplied) || time.Now().After(deadline) {
			return leader, err
		}
	}
}

// createSite creates site s1 through the leader: a retry that finds it
// created by an attempt whose answer was lost is fine.
func createSite(t *testing.T, nodes []*testNode) {
	t.Helper()
	tries := 0
	_, err := onLeader(t, nodes, func(db *store.DB) error {
		tries++
		_, err := db.CreateSite("s1", "one", store.HashSecret("x"))
		if tries > 1 && errors.Is(err, errs.ErrConflict) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// state is what a node's store says about site s1.
func state(t *testing.T, db *store.DB) any {
	t.Helper()
	site, err := db.Site("s1")
	if err != nil {
		t.Fatal(err)
	}
	events, _, err := db.Events("s1", 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	items, err := db.ListDesired("s1", store.KindOrder)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"site": site, "events": events, "orders": items}
}

func events(first, last uint64) *syncproto.Events {
	b := &syncproto.Events{First: first, Last: last}
	for s := first; s <= last; s++ {
		b.Events = append(b.Events, syncproto.Event{Seq: s, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, s))})
	}
	return b
}

func order(id string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%q,"action":"power_on","machine_id":"m1"}`, id))
}

func TestReplicatedStore(t *testing.T) {
	nodes := cluster(t, 3)
	createSite(t, nodes)
	must := func(_ uint64, err error) error { return err }
	if _, err := onLeader(t, nodes, func(db *store.DB) error { return must(db.PutDesired("s1", store.KindOrder, "o1", order("o1"))) }); err != nil {
		t.Fatal(err)
	}
	if _, err := onLeader(t, nodes, func(db *store.DB) error { return must(db.StoreEvents("s1", events(1, 50), 0)) }); err != nil {
		t.Fatal(err)
	}
	// A refused change is refused on every node and changes nothing.
	leader, err := onLeader(t, nodes, func(db *store.DB) error { return must(db.PutDesired("s1", store.KindOrder, "o1", order("o1-changed"))) })
	if !errors.Is(err, errs.ErrConflict) {
		t.Errorf("changing a placed order: %v, want conflict", err)
	}
	waitConverged(t, leader, nodes)
	want := state(t, leader.db)
	for _, tn := range nodes {
		if diff := cmp.Diff(want, state(t, tn.db)); diff != "" {
			t.Errorf("%s differs from the leader (-leader +%s):\n%s", tn.id, tn.id, diff)
		}
	}

	// A follower does not take changes: they go to the leader, whose
	// API it knows.
	leader = waitLeader(t, nodes)
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	if _, err := follower.db.StoreEvents("s1", events(51, 51), 0); !errors.Is(err, store.ErrNotApplied) {
		t.Errorf("a change on a follower: %v, want ErrNotApplied", err)
	}
	centraltest.WaitFor(t, "the follower to know the leader's API", func() bool {
		l := waitLeader(t, nodes)
		return l != follower && follower.node.LeaderAPI() == "http://"+l.addr
	})

	// The leader dies: another takes over with everything committed,
	// and events go on exactly once.
	leader = waitLeader(t, nodes)
	leader.stop()
	var stored uint64
	_, err = onLeader(t, nodes, func(db *store.DB) (err error) {
		stored, err = db.StoreEvents("s1", events(40, 60), 0)
		return err
	})
	if err != nil || stored != 60 {
		t.Fatalf("StoreEvents on the new leader = %d, %v; want 60", stored, err)
	}
	// The old leader comes back as a follower and catches up, without
	// applying anything twice.
	leader.start(t, false)
	next := waitLeader(t, nodes)
	waitConverged(t, next, nodes)
	want = state(t, next.db)
	for _, tn := range nodes {
		got := state(t, tn.db)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s differs from the leader (-leader +%s):\n%s", tn.id, tn.id, diff)
		}
	}
	if evs, _, _ := next.db.Events("s1", 0, 1000); len(evs) != 60 {
		t.Errorf("%d events stored, want 60", len(evs))
	}
}

// A node that was away while the leader compacted its log catches up from
// a snapshot (Restore).
func TestCatchUpFromSnapshot(t *testing.T) {
	nodes := cluster(t, 3)
	createSite(t, nodes)
	leader := waitLeader(t, nodes)
	waitConverged(t, leader, nodes)
	away := nodes[0]
	if away == leader {
		away = nodes[1]
	}
	away.stop()
	for i := uint64(0); i < 20; i++ {
		if _, err := onLeader(t, nodes, func(db *store.DB) error {
			_, err := db.StoreEvents("s1", events(i*10+1, i*10+10), 0)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	leader, err := onLeader(t, nodes, func(db *store.DB) error {
		_, err := db.PutDesired("s1", store.KindOrder, "o1", order("o1"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every running node snapshots and drops its older log: whichever
	// leads when the away node returns (an election may come between,
	// under load) has only a snapshot to send it.
	waitConverged(t, leader, nodes)
	for _, tn := range nodes {
		if tn.node == nil {
			continue
		}
		if err := tn.node.Snapshot(); err != nil {
			t.Fatalf("snapshot of %s: %v", tn.id, err)
		}
	}
	away.start(t, false)
	leader = waitLeader(t, nodes)
	waitConverged(t, leader, nodes)
	// Raft keeps the snapshot it installed in its snapshot store.
	if snaps, _ := filepath.Glob(filepath.Join(away.dir, "raft", "snapshots", "snapshots", "*", "meta.json")); len(snaps) == 0 {
		t.Error("the node caught up without a snapshot; the test did not test Restore")
	}
	if diff := cmp.Diff(state(t, leader.db), state(t, away.db)); diff != "" {
		t.Errorf("the node restored from a snapshot differs (-leader +restored):\n%s", diff)
	}
}
