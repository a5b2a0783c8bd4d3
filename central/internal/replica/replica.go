// Package replica replicates central's store with Raft when central runs
// as several nodes (a single central needs none of it).
//
// Every change of the store is a store.Command. On the leader the store
// proposes it here (Node implements store.Log); Raft commits it to its log
// (bbolt, through raft-boltdb) and every node's FSM applies it with
// store.ApplyLog, which records the last index applied in the same
// transaction, so a restart replays nothing twice. Raft restores no
// snapshot at start-up for the same reason: the store file is the state.
// Snapshots are bbolt files streamed from a read transaction.
//
// Only the leader serves: the app sends every API request and site
// connection a follower gets to the leader's API (Node.LeaderAPI), and
// ends its site sessions when it stops leading (Node.OnLeadership).
package replica

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// ErrNotLeader is returned by Propose on a node that does not lead.
var ErrNotLeader = errors.New("replica: this node is not the leader")

// proposeTimeout bounds how long a change waits to commit.
const proposeTimeout = 10 * time.Second

// Config configures a Node.
type Config struct {
	// ID is the node's unique, stable name.
	ID string
	// Dir holds the Raft log (raft.db) and snapshots.
	Dir string
	// BindAddr is where the Raft transport listens (host:port).
	BindAddr string
	// AdvertiseAddr is the Raft address other nodes dial; BindAddr if
	// empty.
	AdvertiseAddr string
	// APIURL is this node's API, recorded in its Member record so that
	// the others can send requests to it while it leads.
	APIURL string
	// Bootstrap makes a node with no Raft state start a one-node
	// cluster; a node that joins one leaves it false.
	Bootstrap bool
	// Tuning overrides Raft's timing (tests); nil means the defaults.
	Tuning func(*raft.Config)
	Log    *slog.Logger
	// RaftLog receives Raft's own log lines (hclog format); stderr if
	// nil.
	RaftLog io.Writer
}

// Node is one member of central's Raft cluster.
type Node struct {
	cfg   Config
	log   *slog.Logger
	db    *store.DB
	raft  *raft.Raft
	trans *raft.NetworkTransport
	logs  *raftboltdb.BoltStore
	stop  chan struct{}
	ready atomic.Bool // leads, and has applied everything before its term

	mu        sync.Mutex
	observers []func(leader bool)
	closed    bool
}

// Open starts the node's Raft over db and makes db propose its changes
// through it. The caller closes db after Close.
func Open(cfg Config, db *store.DB) (*Node, error) {
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RaftLog == nil {
		cfg.RaftLog = os.Stderr
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Log, db: db, stop: make(chan struct{})}
	if err := n.open(); err != nil {
		n.closeParts()
		return nil, err
	}
	db.SetLog(n)
	go n.watchLeadership()
	return n, nil
}

func (n *Node) open() error {
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft " + n.cfg.ID, Level: hclog.Info, Output: n.cfg.RaftLog})
	logPath := filepath.Join(n.cfg.Dir, "raft.db")
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path:        logPath,
		BoltOptions: &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true},
	})
	if err != nil {
		return fmt.Errorf("replica: open raft log %s: %w", logPath, err)
	}
	n.logs = logs
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(n.cfg.Dir, "snapshots"), 2, hlog)
	if err != nil {
		return fmt.Errorf("replica: open snapshot store: %w", err)
	}
	adv, err := net.ResolveTCPAddr("tcp", n.cfg.AdvertiseAddr)
	if err != nil {
		return fmt.Errorf("replica: advertise address %q: %w", n.cfg.AdvertiseAddr, err)
	}
	trans, err := raft.NewTCPTransportWithLogger(n.cfg.BindAddr, adv, 8, 10*time.Second, hlog)
	if err != nil {
		return fmt.Errorf("replica: listen for raft on %s: %w", n.cfg.BindAddr, err)
	}
	n.trans = trans

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.Logger = hlog
	rc.BatchApplyCh = true
	rc.NoSnapshotRestoreOnStart = true // the store file is the state
	if n.cfg.Tuning != nil {
		n.cfg.Tuning(rc)
	}
	hasState, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("replica: read raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, &fsm{db: n.db, log: n.log}, logs, logs, snaps, trans)
	if err != nil {
		return fmt.Errorf("replica: start raft: %w", err)
	}
	n.raft = r
	if !hasState && n.cfg.Bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			return fmt.Errorf("replica: bootstrap: %w", err)
		}
		n.log.Info("bootstrapped a new single-node central cluster", "id", n.cfg.ID)
	}
	return nil
}

// Propose commits an encoded store.Command and returns the result of
// applying it (store.Log).
func (n *Node) Propose(cmd []byte) (store.Result, error) {
	if n.raft.State() != raft.Leader {
		return store.Result{}, ErrNotLeader
	}
	f := n.raft.Apply(cmd, proposeTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return store.Result{}, ErrNotLeader
		}
		return store.Result{}, fmt.Errorf("replica: commit: %w", err)
	}
	r, ok := f.Response().(store.Result)
	if !ok {
		return store.Result{}, fmt.Errorf("replica: unexpected apply response %T", f.Response())
	}
	return r, nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// IsLeader reports whether this node leads and has applied everything
// committed before its term, so that it answers from a current store.
func (n *Node) IsLeader() bool { return n.ready.Load() && n.raft.State() == raft.Leader }

// LeaderAPI returns the API URL of the leader, if there is one and it is
// known.
func (n *Node) LeaderAPI() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	m, err := n.db.Member(string(id))
	if err != nil {
		return ""
	}
	return m.APIURL
}

// OnLeadership registers fn, called with true when this node becomes a
// ready leader and with false when it stops leading.
func (n *Node) OnLeadership(fn func(leader bool)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.observers = append(n.observers, fn)
}

func (n *Node) tell(leader bool) {
	n.mu.Lock()
	obs := append([]func(bool){}, n.observers...)
	n.mu.Unlock()
	for _, fn := range obs {
		fn(leader)
	}
}

// watchLeadership marks the node ready once, as leader, its Barrier has
// applied every earlier entry, records its own Member record, and tells
// the observers. It ends when the node closes.
func (n *Node) watchLeadership() {
	for {
		select {
		case leader := <-n.raft.LeaderCh():
			wasReady := n.ready.Swap(false)
			if !leader {
				if wasReady {
					n.log.Info("stopped leading", "id", n.cfg.ID)
					n.tell(false)
				}
				continue
			}
			if err := n.raft.Barrier(proposeTimeout).Error(); err != nil {
				n.log.Warn("new leader could not apply the log", "err", err)
				continue
			}
			n.ready.Store(true)
			n.registerSelf()
			n.log.Info("leading", "id", n.cfg.ID)
			n.tell(true)
		case <-n.stop:
			return
		}
	}
}

// registerSelf records this node's addresses if its Member record does
// not hold them yet.
func (n *Node) registerSelf() {
	self := &store.Member{ID: n.cfg.ID, RaftAddr: n.cfg.AdvertiseAddr, APIURL: n.cfg.APIURL}
	if m, err := n.db.Member(n.cfg.ID); err == nil && *m == *self {
		return
	}
	if err := n.db.PutMember(self); err != nil {
		n.log.Warn("recording this node's addresses", "err", err)
	}
}

// AddVoter makes m a voting member and records its addresses. It runs on
// the leader.
func (n *Node) AddVoter(m *store.Member) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, 30*time.Second).Error(); err != nil {
		return fmt.Errorf("replica: add voter %s: %w", m.ID, err)
	}
	n.log.Info("added voter", "id", m.ID, "raft_addr", m.RaftAddr)
	return n.db.PutMember(m)
}

// RemoveServer removes a member from the cluster and forgets its record.
// It runs on the leader.
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error(); err != nil {
		return fmt.Errorf("replica: remove %s: %w", id, err)
	}
	if err := n.db.DeleteMember(id); err != nil && !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	return nil
}

// Status is this node's view of the cluster.
type Status struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Leader       string   `json:"leader,omitempty"`
	LeaderAPI    string   `json:"leader_api,omitempty"`
	AppliedIndex uint64   `json:"applied_index"`
	CommitIndex  uint64   `json:"commit_index"`
	Voters       []string `json:"voters"`
}

// Status reports this node's view of the cluster.
func (n *Node) Status() Status {
	_, leader := n.raft.LeaderWithID()
	st := Status{
		ID: n.cfg.ID, State: n.raft.State().String(), Leader: string(leader), LeaderAPI: n.LeaderAPI(),
		AppliedIndex: n.db.AppliedIndex(), CommitIndex: n.raft.CommitIndex(), Voters: []string{},
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				st.Voters = append(st.Voters, string(s.ID))
			}
		}
	}
	return st
}

// Snapshot asks Raft to take a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close hands leadership over if this node leads others, then stops Raft.
// It is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	if n.raft.State() == raft.Leader && len(n.Status().Voters) > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before stop", "err", err)
		}
	}
	err := n.raft.Shutdown().Error()
	n.closeParts()
	return err
}

func (n *Node) closeParts() {
	if n.trans != nil {
		n.trans.Close()
	}
	if n.logs != nil {
		n.logs.Close()
	}
}

// fsm applies committed entries to the store.
type fsm struct {
	db  *store.DB
	log *slog.Logger
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies a batch of entries in one store transaction. A store
// that cannot apply them stops the node: going on would fork it from the
// others, and Raft replays the batch after a restart.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	entries := make([]store.Entry, len(logs))
	for i, l := range logs {
		entries[i].Index = l.Index
		if l.Type == raft.LogCommand && len(l.Data) > 0 {
			entries[i].Data = l.Data
		}
	}
	results, err := f.db.ApplyLog(entries)
	if err != nil {
		panic(fmt.Sprintf("replica: apply entries %d-%d: %v", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	out := make([]any, len(results))
	for i, r := range results {
		out[i] = r
	}
	return out
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.db.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.Restore(rc); err != nil {
		return err
	}
	f.log.Info("restored the store from a snapshot", "applied_index", f.db.AppliedIndex())
	return nil
}

type fsmSnapshot struct{ s *store.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("replica: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.s.Release() }
