package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// ErrNoLeader is returned when a write or a linearizable read cannot find
// a leader before its context ends.
var ErrNoLeader = errors.New("replica: no leader")

// Config configures a Node.
type Config struct {
	// ID is the node's unique, stable name within the site.
	ID string
	// Dir holds the Raft log (raft.db) and snapshots.
	Dir string
	// BindAddr is where the Raft transport listens (host:port).
	BindAddr string
	// AdvertiseAddr is the Raft address other nodes dial; BindAddr if empty.
	AdvertiseAddr string
	// APIURL is the base URL of this node's API, recorded in its Member
	// record so that followers can forward writes to it when it leads.
	APIURL string
	// Bootstrap makes a node with no Raft state start a one-node cluster.
	// A node that will join an existing cluster leaves it false.
	Bootstrap bool
	// Tuning overrides Raft's timing (tests); nil means defaults.
	Tuning func(*raft.Config)
	// Log receives the node's and Raft's logs.
	Log *slog.Logger
}

// Node is one member of the site's Raft cluster and owner of its FSM.
type Node struct {
	cfg   Config
	log   *slog.Logger
	db    *store.DB
	fsm   *FSM
	raft  *raft.Raft
	trans *raft.NetworkTransport
	logs  *raftboltdb.BoltStore
	http  *http.Client
	batch *batcher
	stop  chan struct{} // closed by Close
	// epoch counts the times this node has become leader; see LeaderEpoch.
	epoch atomic.Uint64
	ready atomic.Bool // leads, and its no-op is applied

	// secret authenticates node-to-node calls; see SetClusterSecret.
	secret atomic.Pointer[[]byte]
	closed atomic.Bool
}

// Open starts the node's Raft over db. The caller owns db and closes it
// after Close.
func Open(cfg Config, db *store.DB) (*Node, error) {
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	n := &Node{
		cfg:  cfg,
		log:  cfg.Log,
		db:   db,
		fsm:  NewFSM(db, cfg.Log),
		http: &http.Client{Timeout: 30 * time.Second},
		stop: make(chan struct{}),
	}
	if err := n.open(); err != nil {
		n.closeParts()
		return nil, err
	}
	return n, nil
}

func (n *Node) open() error {
	hlog := newHCLog(n.log.With("component", "raft"))
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
	// Batch many concurrent proposals into one log append and, through
	// BatchingFSM, one store commit: one fsync each for the whole batch.
	rc.MaxAppendEntries = 512
	rc.BatchApplyCh = true
	// The store file is the state; Raft only replays logs after its
	// applied index (package doc).
	rc.NoSnapshotRestoreOnStart = true
	if n.cfg.Tuning != nil {
		n.cfg.Tuning(rc)
	}

	hasState, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("replica: read raft state: %w", err)
	}
	if hasState && n.db.AppliedIndex() == 0 {
		last, _ := logs.LastIndex()
		if last > 0 {
			n.log.Warn("raft log exists but the store is empty; replaying the log into it", "last_index", last)
		}
	}
	r, err := raft.NewRaft(rc, n.fsm, logs, logs, snaps, trans)
	if err != nil {
		return fmt.Errorf("replica: start raft: %w", err)
	}
	n.raft = r
	n.batch = newBatcher(r)
	go n.watchLeadership()
	if !hasState && n.cfg.Bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{
			Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr(),
		}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			return fmt.Errorf("replica: bootstrap: %w", err)
		}
		n.log.Info("bootstrapped a new single-node cluster", "id", n.cfg.ID)
	}
	return nil
}

// SetClusterSecret sets the secret nodes use to authenticate forwarded
// writes to one another. Every node of a site derives it from the site key.
func (n *Node) SetClusterSecret(secret []byte) { n.secret.Store(&secret) }

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// DB is the node's store.
func (n *Node) DB() *store.DB { return n.db }

// LeaderEpoch counts the times this node has become a ready leader (see
// IsReadyLeader). A subsystem that keeps state only the leader maintains
// (the DHCP server's allocators) rebuilds it from the store when the epoch
// moves, because other leaders may have changed the store in between.
func (n *Node) LeaderEpoch() uint64 { return n.epoch.Load() }

// IsReadyLeader reports whether this node leads and its store has applied
// everything committed before its term (its no-op is applied). Leader-only
// work that reads the store to decide (DHCP answers) waits for this.
func (n *Node) IsReadyLeader() bool { return n.ready.Load() && n.IsLeader() }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// watchLeadership commits a Noop each time this node becomes leader; see
// Noop. It ends when Raft shuts down.
func (n *Node) watchLeadership() {
	for {
		select {
		case leader := <-n.raft.LeaderCh():
			n.ready.Store(false)
			if leader && n.commitNoop() {
				// The store now holds everything earlier leaders
				// committed: leader-only state can be rebuilt from it.
				n.epoch.Add(1)
				n.ready.Store(true)
			}
		case <-n.stop:
			return
		}
	}
}

// commitNoop commits a Noop and reports whether it did while this node
// still leads.
func (n *Node) commitNoop() bool {
	for n.IsLeader() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := n.ApplyLocal(ctx, []byte{byte(Noop)})
		cancel()
		if err == nil {
			return n.IsLeader()
		}
		n.log.Warn("committing the leader's no-op", "err", err)
		select {
		case <-n.stop:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

// Apply commits a command and returns its result. On a follower it is
// forwarded to the leader; with no leader it waits for one until ctx ends.
// A domain refusal is returned as a *errs.Error.
func (n *Node) Apply(ctx context.Context, cmd []byte) (Result, error) {
	for {
		if n.IsLeader() {
			r, err := n.ApplyLocal(ctx, cmd)
			if !errors.Is(err, raft.ErrNotLeader) {
				return r, err
			}
		} else if leader := n.leaderAPI(); leader != "" {
			// Retried only when the leader surely did not take it
			// (errRetry): a command is never applied twice.
			r, err := n.forwardApply(ctx, leader, cmd)
			if !errors.Is(err, errRetry) {
				return r, err
			}
		}
		if err := n.waitLeader(ctx); err != nil {
			return Result{}, err
		}
	}
}

// ApplyLocal commits a command through this node's Raft, which must lead.
func (n *Node) ApplyLocal(ctx context.Context, cmd []byte) (Result, error) {
	if t, _ := commandTypeOf(cmd); t == Batch {
		return Result{}, fmt.Errorf("replica: a batch cannot be proposed directly")
	}
	p := &proposal{cmd: cmd, done: make(chan proposalResult, 1)}
	select {
	case n.batch.in <- p:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		// The command may still commit; the caller cannot know.
		return Result{}, ctx.Err()
	}
}

// waitLeader sleeps briefly so that an election can finish.
func (n *Node) waitLeader(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
	case <-t.C:
		return nil
	}
}

// leaderAPI returns the API URL of the current leader, if known.
func (n *Node) leaderAPI() string {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ""
	}
	var url string
	_ = n.db.View(func(tx *store.Tx) error {
		if m, err := store.Get[store.Member](tx, string(id)); err == nil {
			url = m.APIURL()
		}
		return nil
	})
	return url
}

// ReadIndex returns an index that a linearizable read must wait for. Only
// the leader answers: it confirms with a quorum that it still leads.
func (n *Node) ReadIndex() (uint64, error) {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		return 0, fmt.Errorf("replica: verify leader: %w", err)
	}
	return n.raft.CommitIndex(), nil
}

// Linearize waits until this node's store reflects every write committed
// before the call, so a read that follows sees them all.
func (n *Node) Linearize(ctx context.Context) error {
	for {
		var idx uint64
		var err error
		if n.IsLeader() {
			idx, err = n.ReadIndex()
		} else if leader := n.leaderAPI(); leader != "" {
			idx, err = n.forwardReadIndex(ctx, leader)
		} else {
			err = errRetry
		}
		if err == nil {
			return n.WaitApplied(ctx, idx)
		}
		if werr := n.waitLeader(ctx); werr != nil {
			return fmt.Errorf("replica: linearizable read: %w", err)
		}
	}
}

// WaitApplied blocks until the store has applied idx.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		ch := n.db.Changed()
		if n.db.AppliedIndex() >= idx {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// AddVoter makes a node a voting member and records where its API is. It
// runs on the leader (followers forward it).
func (n *Node) AddVoter(ctx context.Context, m store.Member) error {
	if !n.IsLeader() {
		leader := n.leaderAPI()
		if leader == "" {
			return ErrNoLeader
		}
		return n.forwardJoin(ctx, leader, m)
	}
	timeout := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddr), 0, timeout).Error(); err != nil {
		return fmt.Errorf("replica: add voter %s: %w", m.ID, err)
	}
	n.log.Info("added voter", "id", m.ID, "raft_addr", m.RaftAddr)
	return n.putMember(ctx, m)
}

// RemoveServer removes a node from the cluster and forgets its record.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return fmt.Errorf("replica: remove %s: %w (ask the leader)", id, raft.ErrNotLeader)
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error(); err != nil {
		return fmt.Errorf("replica: remove %s: %w", id, err)
	}
	cmd, err := Encode(DeleteMember, Delete{Key: id, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	_, err = n.Apply(ctx, cmd)
	return err
}

func (n *Node) putMember(ctx context.Context, m store.Member) error {
	cmd, err := Encode(PutMember, Put[store.Member]{Object: &m, Time: time.Now().UTC()})
	if err != nil {
		return err
	}
	_, err = n.Apply(ctx, cmd)
	return err
}

// RegisterSelf makes sure this node's Member record names its current
// addresses, retrying until it is committed or ctx ends.
func (n *Node) RegisterSelf(ctx context.Context) error {
	self := store.Member{ID: n.cfg.ID, RaftAddr: n.cfg.AdvertiseAddr, APIAddr: n.cfg.APIURL}
	for {
		var cur *store.Member
		_ = n.db.View(func(tx *store.Tx) error {
			cur, _ = store.Get[store.Member](tx, n.cfg.ID)
			return nil
		})
		if cur != nil && cur.RaftAddr == self.RaftAddr && cur.APIAddr == self.APIAddr {
			return nil
		}
		if n.inConfiguration() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.putMember(cctx, self)
			cancel()
			if err == nil {
				return nil
			}
			n.log.Debug("registering self", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (n *Node) inConfiguration() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.cfg.ID {
			return true
		}
	}
	return false
}

// Close hands leadership to another voter if this node leads, then stops
// Raft. It is safe to call more than once.
func (n *Node) Close() error {
	if n.closed.Swap(true) {
		return nil
	}
	close(n.stop)
	if n.raft != nil && n.IsLeader() && n.voters() > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before stop", "err", err)
		}
	}
	var err error
	if n.raft != nil {
		err = n.raft.Shutdown().Error()
		n.batch.close()
	}
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

func (n *Node) voters() int {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return 0
	}
	c := 0
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			c++
		}
	}
	return c
}

// Snapshot asks Raft to take a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }
