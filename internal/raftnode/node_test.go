package raftnode

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/testnet"
)

// kv is a small Applier for the tests: "set" commands put key=value into
// a bbolt file, "count" commands increment a counter (so a command
// applied twice shows), and "refuse" is refused. Every apply records the
// applied index in the same transaction, as the real state machines do.
type kv struct {
	mu   sync.RWMutex // held exclusively by Restore
	db   *bolt.DB
	path string
}

const (
	cmdSet    command.Type = 1
	cmdCount  command.Type = 2
	cmdRefuse command.Type = 3
)

var (
	bucketKV   = []byte("kv")
	keyApplied = []byte("\x00applied")
	keyCount   = []byte("\x00count")
)

var errRefused = errors.New("refused")

func openKV(t *testing.T, path string) *kv {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists(bucketKV); return err }); err != nil {
		t.Fatal(err)
	}
	return &kv{db: db, path: path}
}

var kvTable = command.Table[*bolt.Bucket]{
	cmdSet: func(b *bolt.Bucket, p []byte, _ uint64) (any, error) {
		k, v, _ := bytes.Cut(p, []byte("="))
		return string(v), b.Put(k, v)
	},
	cmdCount: func(b *bolt.Bucket, _ []byte, _ uint64) (any, error) {
		n := u64(b.Get(keyCount)) + 1
		return n, b.Put(keyCount, be(n))
	},
	cmdRefuse: func(*bolt.Bucket, []byte, uint64) (any, error) { return nil, errRefused },
}

func (s *kv) Apply(entries []Entry) ([]any, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]any, len(entries))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		applied := u64(b.Get(keyApplied))
		last := applied
		for i, e := range entries {
			if e.Index <= applied {
				continue
			}
			last = e.Index
			if e.Data == nil {
				continue
			}
			r, _, err := kvTable.Apply(b, e.Data, e.Index)
			if errors.Is(err, errRefused) {
				out[i] = err // a refusal is a result
				continue
			} else if err != nil {
				return err
			}
			out[i] = r
		}
		return b.Put(keyApplied, be(last))
	})
	return out, err
}

func (s *kv) get(key string) (v string, applied, count uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_ = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketKV)
		v, applied, count = string(b.Get([]byte(key))), u64(b.Get(keyApplied)), u64(b.Get(keyCount))
		return nil
	})
	return v, applied, count
}

func (s *kv) AppliedIndex() uint64 { _, a, _ := s.get(""); return a }

type kvSnapshot struct{ tx *bolt.Tx }

func (s kvSnapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }
func (s kvSnapshot) Release()                           { s.tx.Rollback() }

func (s *kv) Snapshot() (Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return kvSnapshot{tx}, nil
}

func (s *kv) Restore(r io.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.db.Close(); err != nil {
		return err
	}
	f, err := os.Create(s.path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	s.db, err = bolt.Open(s.path, 0o600, nil)
	return err
}

func be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func set(k, v string) []byte { return append([]byte{byte(cmdSet)}, k+"="+v...) }

// member is one node of a test cluster, restartable on its directory.
type member struct {
	id, dir, addr string
	kv            *kv
	node          *Node
	tune          func(*raft.Config) // after fastRaft, if set
	probe         Probe              // Config.Probe
	// pki secures the node's Raft port; nil leaves it plain TCP.
	pki *testPKI
	// internal is served on the Raft port (with pki).
	internal http.Handler
}

// testPKI is a test cluster's CA and the members it admits: the tests'
// stand-in for the member records a side keeps in its store.
type testPKI struct {
	ca    *pki.CA
	trust *pki.Trust
	mu    sync.Mutex
	fps   map[string]string // id -> key fingerprint
}

// newTestPKI derives a CA from a secret of 32 seed bytes.
func newTestPKI(t *testing.T, seed byte) *testPKI {
	ca, err := pki.DeriveCA(bytes.Repeat([]byte{seed}, 32), "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, trust: pki.NewTrust("test", ca.Certificate()), fps: map[string]string{}}
}

// identity loads (or makes) a node's key in dir with a certificate from
// the CA.
func (p *testPKI) identity(t *testing.T, dir, id string) *pki.Identity {
	t.Helper()
	ident, err := pki.LoadIdentity(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ident.Renew(p.ca, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return ident
}

// admit records a member's key; revoke forgets the member.
func (p *testPKI) admit(id, fp string) { p.mu.Lock(); p.fps[id] = fp; p.mu.Unlock() }
func (p *testPKI) revoke(id string)    { p.mu.Lock(); delete(p.fps, id); p.mu.Unlock() }

func (p *testPKI) member(id string) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fp, ok := p.fps[id]
	return []string{fp}, ok
}

// client is a TLS configuration that presents ident to a node.
func (p *testPKI) client(ident *pki.Identity, protos ...string) *tls.Config {
	return pki.ClientConfig(ident, p.trust, nil, protos...)
}

func fastRaft(c *raft.Config) {
	// Short enough for quick elections, long enough that a leader on a
	// loaded machine (tests run with -race on two shared cores, with TLS
	// handshakes) keeps its lease.
	c.HeartbeatTimeout = time.Second
	c.ElectionTimeout = time.Second
	c.LeaderLeaseTimeout = 500 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30 // only when a test asks
	c.TrailingLogs = 2
}

func (m *member) start(t *testing.T, bootstrap bool) {
	t.Helper()
	if err := m.open(t, bootstrap); err != nil {
		t.Fatal(err)
	}
}

// open opens the member's store and node; if the node does not open,
// the store is closed again.
func (m *member) open(t *testing.T, bootstrap bool) error {
	t.Helper()
	m.kv = openKV(t, filepath.Join(m.dir, "kv.db"))
	tuning := func(c *raft.Config) {
		fastRaft(c)
		if m.tune != nil {
			m.tune(c)
		}
	}
	cfg := Config{ID: m.id, Dir: filepath.Join(m.dir, "raft"), BindAddr: m.addr, Bootstrap: bootstrap,
		Probe: m.probe, Tuning: tuning, Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", m.id)}
	if m.pki != nil {
		ident := m.pki.identity(t, m.dir, m.id)
		m.pki.admit(m.id, ident.Fingerprint())
		cfg.TLS = &TLS{Identity: ident, Trust: m.pki.trust, Member: m.pki.member, Internal: m.internal}
	}
	n, err := Open(cfg, m.kv)
	if err != nil {
		m.kv.db.Close()
		return err
	}
	m.node = n
	return nil
}

func (m *member) stop() {
	if m.node != nil {
		m.node.Close()
		m.kv.db.Close()
		m.node = nil
	}
}

func freeAddr(t *testing.T) string { return testnet.FreeAddr(t) }

// cluster starts n members over mutual TLS: the first bootstraps, the
// others join it.
func cluster(t *testing.T, n int) []*member {
	t.Helper()
	return tunedCluster(t, n, nil)
}

// tunedCluster is cluster with tune applied to every member's Raft
// settings after fastRaft.
func tunedCluster(t *testing.T, n int, tune func(*raft.Config)) []*member {
	t.Helper()
	return newCluster(t, n, func(m *member) { m.tune = tune })
}

// newCluster is cluster with set applied to each member before it opens.
func newCluster(t *testing.T, n int, set func(*member)) []*member {
	t.Helper()
	p := newTestPKI(t, 7)
	ms := make([]*member, n)
	for i := range ms {
		ms[i] = &member{id: fmt.Sprintf("n%d", i+1), dir: t.TempDir(), addr: freeAddr(t), pki: p}
		set(ms[i])
	}
	t.Cleanup(func() {
		for _, m := range ms {
			m.stop()
		}
	})
	ms[0].start(t, true)
	waitReady(t, ms)
	for _, m := range ms[1:] {
		m.start(t, false)
		// Adding a voter again is a no-op: retry on whichever node
		// leads if leadership moves in the middle.
		deadline := time.Now().Add(30 * time.Second)
		for err := errors.New("not yet"); err != nil; {
			if err = waitReady(t, ms).node.AddVoter(t.Context(), m.id, m.addr); err != nil && time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	return ms
}

// waitReady returns the member that is a ready leader.
func waitReady(t *testing.T, ms []*member) *member {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range ms {
			if m.node != nil && m.node.IsReady() {
				return m
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no ready leader")
	return nil
}

func TestProposeAndReady(t *testing.T) {
	ms := cluster(t, 1)
	n := ms[0].node
	if n.Epoch() != 1 {
		t.Errorf("epoch %d after the first election, want 1", n.Epoch())
	}
	// The leader's Noop is applied: the store's index is the commit index.
	if got, want := ms[0].kv.AppliedIndex(), n.Status().CommitIndex; got != want {
		t.Errorf("applied index %d on a ready leader, want the commit index %d", got, want)
	}
	idx, res, err := n.Propose(t.Context(), set("a", "1"))
	if err != nil || res != "1" {
		t.Fatalf("propose: %v, %v", res, err)
	}
	if err := n.WaitApplied(t.Context(), idx); err != nil {
		t.Fatal(err)
	}
	if v, applied, _ := ms[0].kv.get("a"); v != "1" || applied != idx {
		t.Errorf("after the set: a=%q at index %d, want 1 at %d", v, applied, idx)
	}
	if _, res, err := n.Propose(t.Context(), []byte{byte(cmdRefuse)}); err != nil || res != errRefused {
		t.Errorf("a refused command: result %v, err %v; want the refusal as the result", res, err)
	}
	if _, _, err := n.Propose(t.Context(), command.EncodeBatch([][]byte{set("x", "y")})); err == nil {
		t.Error("a batch proposed from outside was accepted")
	}
}

// TestGroupCommit proposes from many goroutines at once: each proposer
// gets its own command's result, and the commands share log entries.
func TestGroupCommit(t *testing.T) {
	ms := cluster(t, 1)
	n := ms[0].node
	const writers, each = 32, 20
	var wg sync.WaitGroup
	indexes := make(chan uint64, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := fmt.Sprintf("%d-%d", w, i)
				idx, res, err := n.Propose(t.Context(), set(fmt.Sprintf("k%d", w), v))
				if err != nil || res != v {
					t.Errorf("writer %d: result %v, err %v", w, res, err)
					return
				}
				indexes <- idx
			}
		}()
	}
	wg.Wait()
	close(indexes)
	distinct := map[uint64]bool{}
	for idx := range indexes {
		distinct[idx] = true
	}
	if len(distinct) >= writers*each {
		t.Errorf("%d commands took %d log entries: nothing was grouped", writers*each, len(distinct))
	}
	for w := range writers {
		if v, _, _ := ms[0].kv.get(fmt.Sprintf("k%d", w)); v != fmt.Sprintf("%d-%d", w, each-1) {
			t.Errorf("k%d = %q, want writer %d's last value", w, v, w)
		}
	}
}

// TestRestartReplaysNothingTwice restarts a node: the log after the
// store's applied index is replayed, nothing before it again.
func TestRestartReplaysNothingTwice(t *testing.T) {
	ms := cluster(t, 1)
	m := ms[0]
	for range 5 {
		if _, _, err := m.node.Propose(t.Context(), []byte{byte(cmdCount)}); err != nil {
			t.Fatal(err)
		}
	}
	m.stop()
	m.start(t, true)
	waitReady(t, ms)
	if _, _, count := m.kv.get(""); count != 5 {
		t.Errorf("counter %d after a restart, want 5", count)
	}
	if m.node.Epoch() != 1 {
		t.Errorf("epoch %d after a restart, want 1 (it counts this process's elections)", m.node.Epoch())
	}
}

// TestClusterFailover runs three nodes: a follower refuses proposals, the
// others converge, and when the leader stops another becomes ready and
// tells its observers.
func TestClusterFailover(t *testing.T) {
	ms := cluster(t, 3)
	leader := waitReady(t, ms)
	idx, _, err := leader.node.Propose(t.Context(), set("a", "1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := m.node.WaitApplied(t.Context(), idx); err != nil {
			t.Fatal(err)
		}
		if v, _, _ := m.kv.get("a"); v != "1" {
			t.Errorf("%s: a=%q, want 1", m.id, v)
		}
		if m != leader {
			if _, _, err := m.node.Propose(t.Context(), set("b", "2")); !errors.Is(err, ErrNotLeader) {
				t.Errorf("%s: a follower's propose: %v, want ErrNotLeader", m.id, err)
			}
			if id, _ := m.node.Leader(); id != leader.id {
				t.Errorf("%s: leader %q, want %q", m.id, id, leader.id)
			}
		}
	}
	became := make(chan string, 3)
	for _, m := range ms {
		if m != leader {
			m.node.OnLeadership(func(ready bool) {
				if ready {
					became <- m.id
				}
			})
		}
	}
	leader.stop() // hands leadership over
	select {
	case id := <-became:
		if id == leader.id {
			t.Errorf("the stopped node %s became leader", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no other node became a ready leader")
	}
	next := waitReady(t, ms)
	if _, res, err := next.node.Propose(t.Context(), set("c", "3")); err != nil || res != "3" {
		t.Fatalf("propose on the new leader: %v, %v", res, err)
	}
}

// TestSnapshotCatchUp adds a node after the log has been compacted: it
// gets the leader's snapshot and then the rest of the log.
func TestSnapshotCatchUp(t *testing.T) {
	ms := cluster(t, 1)
	for i := range 20 {
		if _, _, err := ms[0].node.Propose(t.Context(), set(fmt.Sprintf("k%d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
	if err := ms[0].node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	late := &member{id: "late", dir: t.TempDir(), addr: freeAddr(t), pki: ms[0].pki}
	t.Cleanup(late.stop)
	late.start(t, false)
	if err := ms[0].node.AddVoter(t.Context(), late.id, late.addr); err != nil {
		t.Fatal(err)
	}
	idx, _, err := ms[0].node.Propose(t.Context(), set("after", "snapshot"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := late.node.WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k0", "k19", "after"} {
		if v, _, _ := late.kv.get(k); v == "" {
			t.Errorf("the late node has no %s", k)
		}
	}
	servers, err := ms[0].node.Servers()
	if err != nil || len(servers) != 2 || !servers[1].Voter || servers[1].ID != "late" {
		t.Errorf("servers %+v, %v; want n1 and late, voters", servers, err)
	}
	if st := late.node.Status(); st.State != "Follower" || st.LeaderID != "n1" || !strings.HasPrefix(st.LeaderAddr, "127.0.0.1:") {
		t.Errorf("late node's status %+v", st)
	}
}

// The transport Raft is given refuses a pipeline (nopipeline.go): a
// follower behind the leader is then caught up one AppendEntries at a
// time (TestSnapshotCatchUp, TestClusterFailover show it is).
func TestNoPipeline(t *testing.T) {
	if _, err := (noPipeline{}).AppendEntriesPipeline("n2", "127.0.0.1:1"); !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Errorf("AppendEntriesPipeline: %v, want raft.ErrPipelineReplicationNotSupported", err)
	}
}
