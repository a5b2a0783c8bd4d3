package syncclient

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/seal"
)

// fastRaft elects sooner than Raft's defaults, but not so soon that a
// leader on a loaded machine (the race detector, other tests) misses its
// lease and steps down while the test waits: at 100 ms leadership moved
// dozens of times in a run of TestSpansForwarded under load.
func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// startCluster starts a three-node site; every node runs a sync client,
// whose configuration tune (if set) changes.
func startCluster(t *testing.T, f *fakeCentral, credFile string, tune func(n *cluster.Site, cfg *Config)) []*cluster.Site {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	var nodes []*cluster.Site
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		id, dir, addr := fmt.Sprintf("n%d", i+1), t.TempDir(), apptest.FreeAddr(t)
		db, err := store.Open(filepath.Join(dir, "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		node := apptest.OpenNode(t, key, cluster.Config{ID: id, Dir: filepath.Join(dir, "raft"), BindAddr: addr,
			APIURL: "http://127.0.0.1:1", Bootstrap: i == 0, Tuning: fastRaft, Log: log.With("node", id)}, db)
		nodes = append(nodes, cluster.NewSite(node, site.ProposerConfig{}))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for !nodes[0].IsReadyLeader() {
		if ctx.Err() != nil {
			t.Fatal("no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Leadership may move while the cluster forms (fast Raft timing on
	// a loaded machine): each node joins through whoever leads then.
	ca := func() (*pki.Authority, error) { return cluster.SiteCA(key) }
	for i, n := range nodes[1:] {
		for {
			leader := slices.IndexFunc(nodes[:i+1], func(m *cluster.Site) bool { return m.IsLeader() })
			if leader >= 0 {
				err := n.Node.JoinWith(ctx, nodes[leader].Node.Join, ca)
				if err == nil {
					break
				}
				t.Logf("join %s through %s: %v; again", n.ID(), nodes[leader].ID(), err)
			}
			if ctx.Err() != nil {
				t.Fatalf("join %s: no leader took it", n.ID())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		cfg := Config{Node: n, Store: n.DB(), URL: f.srv.URL, RootCAs: f.roots(), Site: "ams2", CredentialFile: credFile,
			Log:        log.With("node", n.ID()),
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, LongBackoff: time.Second}
		if tune != nil {
			tune(n, &cfg)
		}
		c, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return nodes
}

func leaderOf(t *testing.T, nodes []*cluster.Site) *cluster.Site {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range nodes {
			if n.IsReadyLeader() {
				return n
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no ready leader")
	return nil
}

// TestSyncLeaderChange: only the leader syncs; when it goes, the new
// leader resumes from the replicated cursors, exactly once.
func TestSyncLeaderChange(t *testing.T) {
	f := newFakeCentral(t, testCredential)
	cred := filepath.Join(t.TempDir(), "site.credential")
	if err := os.WriteFile(cred, []byte(testCredential), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := startCluster(t, f, cred, nil)
	first := leaderOf(t, nodes)
	record := func(ctx context.Context, n *cluster.Site, count int) error {
		for range count / 100 {
			if err := recordEvents(ctx, n, 100, "test"); err != nil {
				return err
			}
		}
		return nil
	}
	lastSeq := func(n *cluster.Site) (s store.SyncState) {
		_ = n.DB().View(func(tx *store.Tx) error { s = tx.SyncState(); return nil })
		return s
	}
	// Leadership may move under load (and the race detector): record on
	// whoever leads, batch by batch.
	recordOnLeader := func(nodes []*cluster.Site, batches int) {
		t.Helper()
		for i := 0; i < batches; {
			if err := record(t.Context(), leaderOf(t, nodes), 100); err == nil {
				i++
			}
		}
	}
	// Central learns that a revision is applied from its ack or, if the
	// session lost the commit's outcome, from the next hello.
	knownApplied := func(rev uint64) func() bool {
		return func() bool {
			known := slices.Contains(f.acked, rev)
			for _, h := range f.hellos {
				known = known || h.AppliedRevision >= rev
			}
			return known
		}
	}
	f.addRevision(change(t, "image", "debian", &store.Image{Name: "debian", URL: "https://img.example/d.raw", Format: "raw"}))
	recordOnLeader(nodes, 5)
	f.waitFor("500 events", func() bool { return len(f.stored) >= 500 })
	f.waitFor("revision 1 known applied", knownApplied(1))
	if n := len(f.hellos); n > 2 {
		t.Errorf("%d hellos from a three-node site before a failover, want the leader's (one, two if it was re-elected)", n)
	}
	first = leaderOf(t, nodes)

	recording := make(chan error, 1)
	// It fails once the node closes: that is fine.
	rctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	go func() { recording <- record(rctx, first, 1000) }()
	time.Sleep(20 * time.Millisecond)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	var rest []*cluster.Site
	for _, n := range nodes {
		if n != first {
			rest = append(rest, n)
		}
	}
	<-recording
	f.addRevision(change(t, "image", "ubuntu", &store.Image{Name: "ubuntu", URL: "https://img.example/u.raw", Format: "raw"}))
	recordOnLeader(rest, 3)
	next := leaderOf(t, rest)
	want := lastSeq(next).LastSeq
	f.waitFor(fmt.Sprintf("%d events", want), func() bool { return uint64(len(f.stored)) >= want })
	f.waitFor("revision 2 known applied", knownApplied(2))
	next = leaderOf(t, rest)
	var events []*store.Event
	_ = next.DB().View(func(tx *store.Tx) (err error) { events, err = tx.EventsSince(0, 1<<20); return err })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.stored) != len(events) {
		t.Fatalf("central stored %d events, the new leader has %d", len(f.stored), len(events))
	}
	for i, e := range f.stored {
		if e.Seq != uint64(i+1) || e.Seq != events[i].Seq {
			t.Fatalf("central's event %d has seq %d", i, e.Seq)
		}
	}
	h := f.hellos[len(f.hellos)-1]
	// The acked sequence is a hint that may lag (the old leader's last
	// ack may not have committed), never ahead of what central stored.
	if h.AppliedRevision < 1 || h.AckedSeq > uint64(len(f.stored)) {
		t.Errorf("the last hello = %+v, want revision at least 1 and acked at most %d", h.LogValue(), len(f.stored))
	}
	if s := lastSeq(next); s.AppliedRevision != 2 {
		t.Errorf("new leader's applied revision %d, want 2", s.AppliedRevision)
	}
}

// TestSyncAfterRestart: an appliance restarted on its data resumes from
// the cursors in its store: the revision it applied is not applied
// again, and its events continue from central's stored sequence.
func TestSyncAfterRestart(t *testing.T) {
	f := newFakeCentral(t, testCredential)
	dir, addr := t.TempDir(), apptest.FreeAddr(t)
	cred := filepath.Join(dir, "site.credential")
	if err := os.WriteFile(cred, []byte(testCredential), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	record := func(n *cluster.Site, count int) {
		t.Helper()
		if err := recordEvents(t.Context(), n, count, "test"); err != nil {
			t.Fatal(err)
		}
	}

	// start opens the node on dir, records events, then runs a client.
	start := func(events int) (n *cluster.Site, stop func()) {
		db, err := store.Open(filepath.Join(dir, "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		node := apptest.OpenNode(t, key, cluster.Config{ID: "n1", Dir: filepath.Join(dir, "raft"), BindAddr: addr,
			APIURL: "http://127.0.0.1:1", Bootstrap: true, Tuning: fastRaft, Log: log}, db)
		n = cluster.NewSite(node, site.ProposerConfig{})
		leaderOf(t, []*cluster.Site{n})
		record(n, events)
		c, err := New(Config{Node: n, Store: db, URL: f.srv.URL, RootCAs: f.roots(), Site: "ams2", CredentialFile: cred, Log: log,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { c.Run(ctx); close(done) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				<-done
				n.Close()
				db.Close()
			})
		}
		t.Cleanup(stop)
		return n, stop
	}
	f.addRevision(change(t, "image", "debian", &store.Image{Name: "debian", URL: "https://img.example/d.raw", Format: "raw"}))
	_, stop := start(300)
	f.waitFor("300 events and desired_ack 1", func() bool { return len(f.stored) == 300 && len(f.acked) == 1 })
	stop()

	start(100)
	f.waitFor("400 events", func() bool { return len(f.stored) == 400 })
	f.mu.Lock()
	h, acked := f.hellos[len(f.hellos)-1], slices.Clone(f.acked)
	for i, e := range f.stored {
		if e.Seq != uint64(i+1) {
			t.Fatalf("central's event %d has seq %d", i, e.Seq)
		}
	}
	f.mu.Unlock()
	if h.AppliedRevision != 1 || h.LastSeq != 400 {
		t.Errorf("hello after the restart = %+v, want revision 1, last 400", h.LogValue())
	}
	if diff := slices.Compare([]uint64{1}, acked); diff != 0 {
		t.Errorf("desired_acks %v, want [1]: revision 1 applied once", acked)
	}
}
