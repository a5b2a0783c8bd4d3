package raftnode

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/command"
)

// Errors of Propose and the membership calls.
var (
	// ErrNotLeader means this node does not lead: the command never
	// entered the log and may be proposed again, to the leader.
	ErrNotLeader = errors.New("raftnode: this node is not the leader")
	// ErrUnknownOutcome means leadership was lost while the command was
	// in flight: it may or may not be committed. It must not be proposed
	// again blindly; the caller decides.
	ErrUnknownOutcome = errors.New("raftnode: leadership was lost while committing; the change may or may not be applied")
)

// Config configures a Node.
type Config struct {
	// ID is the node's unique, stable name within its cluster.
	ID string
	// Dir holds the Raft log (raft.db) and snapshots.
	Dir string
	// BindAddr is where the Raft transport listens (host:port).
	BindAddr string
	// AdvertiseAddr is the Raft address other nodes dial; BindAddr if
	// empty.
	AdvertiseAddr string
	// Bootstrap makes a node with no Raft state start a one-node
	// cluster. A node that will join an existing cluster leaves it false.
	Bootstrap bool
	// TLS, when set, makes the Raft port speak mutual TLS between members
	// only (tls.go), and carry the node-to-node HTTP calls too. Without
	// it the port is plain TCP, open to anyone who reaches it: only for
	// tests of the core.
	TLS *TLS
	// Timing is how soon followers start an election when their leader
	// is silent, and how long a leader leads without hearing from a
	// quorum; the zero Timing keeps hashicorp/raft's defaults (1 s, 1 s,
	// 500 ms). LANTiming suits a site's appliances.
	Timing Timing
	// Probe is how a follower checks a silent leader's port and starts
	// an election at once when nothing listens there (probe.go); the
	// zero Probe disables it. LANProbe suits a site's appliances.
	Probe Probe
	// Tuning overrides Raft's settings after Timing (tests); nil keeps
	// them.
	Tuning func(*raft.Config)
	// Log receives the node's log and Raft's (through an hclog adapter).
	Log *slog.Logger
}

// Node is one member of a Raft cluster and the owner of its Applier.
type Node struct {
	cfg   Config
	log   *slog.Logger
	a     Applier
	raft  *raft.Raft
	rp    atomic.Pointer[raft.Raft]         // raft, for the handshakes that start before Open returns
	seed  atomic.Pointer[map[string]string] // SetJoinTrust
	trans *raft.NetworkTransport
	// stream, internal and client are the TLS transport's (Config.TLS).
	stream      *tlsStream
	internal    *http.Server
	endInternal context.CancelFunc // ends the internal server's requests
	client      *http.Client
	logs        *raftboltdb.BoltStore
	writes      *writeHealth // failed writes (writes.go)
	handingOver atomic.Bool  // a leadership transfer for want of space is under way
	batch       *batcher
	stop        chan struct{} // closed by Close

	ready atomic.Bool   // leads, and its Noop is applied
	epoch atomic.Uint64 // times this node became a ready leader
	// leaderChanges counts the leaders, or terms, this node has seen
	// follow one another (leaders.go).
	leaderChanges atomic.Uint64
	// probes counts the probes of a silent leader by verdict, takeOvers
	// the elections they started (probe.go).
	probes    probeCounts
	takeOvers atomic.Uint64

	amu       sync.Mutex
	appliedCh chan struct{} // closed when the applied index moves

	mu        sync.Mutex
	observers []func(ready bool)
	closed    bool
}

// Open starts a node over a. The caller owns a's store and closes it
// after Close.
func Open(cfg Config, a Applier) (*Node, error) {
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Probe.After > 0 && cfg.Probe.Timeout <= 0 {
		return nil, fmt.Errorf("raftnode: probe timeout %v: must be positive", cfg.Probe.Timeout)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftnode: %w", err)
	}
	n := &Node{cfg: cfg, log: cfg.Log, a: a, stop: make(chan struct{}), appliedCh: make(chan struct{}),
		writes: &writeHealth{log: cfg.Log, problems: map[string]string{}}}
	if err := n.open(); err != nil {
		n.closeParts()
		return nil, err
	}
	if n.internal != nil {
		go n.internal.Serve(httpListener{n.stream})
	}
	go n.watchLeadership()
	go n.countLeaderChanges()
	if cfg.Probe.After > 0 {
		go n.probeLeader()
	}
	return n, nil
}

func (n *Node) open() error {
	// The store, the log and the snapshots must agree before raft-boltdb
	// opens (or makes) the log: datadir.go.
	d, err := readDisk(n.cfg.Dir)
	if err != nil {
		return err
	}
	if err := d.agree(storeFile{exists: true, applied: n.a.AppliedIndex()}); err != nil {
		return err
	}
	hlog := newHCLog(n.log.With("component", "raft"))
	logs, err := raftboltdb.New(raftboltdb.Options{
		Path:        d.logPath,
		BoltOptions: &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true},
	})
	if err != nil {
		return fmt.Errorf("raftnode: open the raft log %s: %w", d.logPath, err)
	}
	n.logs = logs
	snaps, err := openSnapshots(filepath.Join(n.cfg.Dir, snapshotDir), hlog)
	if err != nil {
		return err
	}
	adv, err := net.ResolveTCPAddr("tcp", n.cfg.AdvertiseAddr)
	if err != nil {
		return fmt.Errorf("raftnode: advertise address %q: %w", n.cfg.AdvertiseAddr, err)
	}
	trans, err := n.transport(adv, hlog)
	if err != nil {
		return fmt.Errorf("raftnode: listen for raft on %s: %w", n.cfg.BindAddr, err)
	}
	n.trans = trans

	rc := n.raftConfig(hlog)
	hasState, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("raftnode: read the raft state: %w", err)
	}
	f := &fsm{a: n.a, log: n.log, applied: n.notifyApplied, stalled: n.applyStalled, stop: n.stop}
	if err := n.catchUp(d, logs, snaps, f); err != nil {
		return err
	}
	watched := watchedLogs{BoltStore: logs, w: n.writes}
	r, err := raft.NewRaft(rc, f, watched, watched, snaps, noPipeline{trans})
	if err != nil {
		return fmt.Errorf("raftnode: start raft: %w", err)
	}
	n.raft = r
	n.rp.Store(r)
	n.batch = newBatcher(r)
	if !hasState && n.cfg.Bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: rc.LocalID, Address: trans.LocalAddr()}}}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			return fmt.Errorf("raftnode: bootstrap: %w", err)
		}
		n.log.Info("bootstrapped a new single-node cluster", "id", n.cfg.ID)
	}
	return nil
}

// raftConfig is Raft's configuration for this node.
func (n *Node) raftConfig(hlog hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.cfg.ID)
	rc.Logger = hlog
	// A follower catching up, or a replay, hands the state machine up
	// to this many entries in one transaction.
	rc.MaxAppendEntries = 512
	// The batcher is the group commit (batch.go).
	rc.BatchApplyCh = false
	// The store file is the state; Raft only replays the logs after its
	// applied index (package doc).
	rc.NoSnapshotRestoreOnStart = true
	n.cfg.Timing.apply(rc)
	if n.cfg.Tuning != nil {
		n.cfg.Tuning(rc)
	}
	return rc
}

// transport listens on the Raft port: plain TCP, or mutual TLS with the
// internal HTTP server beside Raft (Config.TLS).
func (n *Node) transport(adv net.Addr, hlog hclog.Logger) (*raft.NetworkTransport, error) {
	t := n.cfg.TLS
	if t == nil {
		return raft.NewTCPTransportWithLogger(n.cfg.BindAddr, adv, 8, 10*time.Second, hlog)
	}
	stream, err := newTLSStream(n.cfg.BindAddr, adv, t, n.admit, n.log.With("component", "raft-tls"))
	if err != nil {
		return nil, err
	}
	n.stream = stream
	n.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialTLSContext: stream.dialHTTP, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second,
	}}
	if t.Internal != nil {
		// Requests (event streams sent on to a leader) end when the node
		// closes, so that none outlives it.
		base, end := context.WithCancel(context.Background())
		n.endInternal = end
		n.internal = &http.Server{
			Handler:           n.members(t.Internal),
			ReadHeaderTimeout: handshakeTimeout,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return base },
		}
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 8, Timeout: 10 * time.Second, Logger: hlog,
	}), nil
}

// ID is the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Addr is the Raft address other nodes dial.
func (n *Node) Addr() string { return n.cfg.AdvertiseAddr }

// Propose commits cmd through this node, which must lead, and returns the
// index it was applied at and the Applier's result for it. It waits until
// the command is applied here, or ctx ends (the command may then still
// commit: the caller cannot know).
func (n *Node) Propose(ctx context.Context, cmd []byte) (uint64, any, error) {
	if t, _ := command.Split(cmd); t == command.Batch {
		return 0, nil, errors.New("raftnode: a batch cannot be proposed: the node makes them")
	}
	if n.raft.State() != raft.Leader {
		return 0, nil, ErrNotLeader
	}
	p := &proposal{cmd: cmd, done: make(chan outcome, 1)}
	select {
	case n.batch.in <- p:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	select {
	case o := <-p.done:
		return o.index, o.result, o.err
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

// IsLeader reports whether this node is the Raft leader now, ready or not.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// IsReady reports whether this node leads and its state machine has
// applied everything committed before its term (its Noop is applied).
// Leader-only work that reads the store to decide waits for this.
func (n *Node) IsReady() bool { return n.ready.Load() && n.IsLeader() }

// Epoch counts the times this node has become a ready leader. A subsystem
// that keeps state only the leader maintains rebuilds it from the store
// when the epoch moves: other leaders may have changed the store between.
func (n *Node) Epoch() uint64 { return n.epoch.Load() }

// Leader returns the current leader's id and Raft address ("" if none is
// known).
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// OnLeadership registers fn, called with true when this node becomes a
// ready leader and with false when it stops leading. Calls are made in
// order from one goroutine.
func (n *Node) OnLeadership(fn func(ready bool)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.observers = append(n.observers, fn)
}

func (n *Node) tell(ready bool) {
	n.mu.Lock()
	obs := append([]func(bool){}, n.observers...)
	n.mu.Unlock()
	for _, fn := range obs {
		fn(ready)
	}
}

// watchLeadership commits a Noop each time this node becomes leader and
// then calls it ready; see command.Noop. It ends when the node closes.
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
			if n.commitNoop() {
				// The store now holds everything earlier leaders
				// committed: leader-only state can be rebuilt from it.
				n.epoch.Add(1)
				n.ready.Store(true)
				n.log.Info("leading", "id", n.cfg.ID, "term", n.raft.Stats()["term"])
				n.tell(true)
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
		_, _, err := n.Propose(ctx, []byte{byte(command.Noop)})
		cancel()
		if err == nil {
			return n.IsLeader()
		}
		n.log.Warn("committing the new leader's no-op", "err", err)
		select {
		case <-n.stop:
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return false
}

func (n *Node) notifyApplied() {
	n.amu.Lock()
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.amu.Unlock()
}

// AppliedIndex is the index of the last entry the state machine applied.
func (n *Node) AppliedIndex() uint64 { return n.a.AppliedIndex() }

// WaitApplied blocks until the state machine has applied idx or ctx ends.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		n.amu.Lock()
		ch := n.appliedCh
		n.amu.Unlock()
		if n.a.AppliedIndex() >= idx {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// ErrAgain, returned by a function EachApplied calls, has it called
// again within its retry time even if nothing is applied meanwhile: it
// waits for something outside the store.
var ErrAgain = errors.New("raftnode: again")

// EachApplied calls fn now and again each time the state machine has
// applied more, until ctx ends: a node follows what its store records
// (the CA generation). After fn fails it is called again within retry
// even if nothing was applied; the failure is logged unless it is
// ErrAgain.
func (n *Node) EachApplied(ctx context.Context, retry time.Duration, what string, fn func(context.Context) error) {
	for {
		idx := n.AppliedIndex()
		wctx, cancel := ctx, context.CancelFunc(func() {})
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			if !errors.Is(err, ErrAgain) {
				n.log.Warn(what+"; trying again", "err", err)
			}
			wctx, cancel = context.WithTimeout(ctx, retry)
		}
		_ = n.WaitApplied(wctx, idx+1)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// ReadIndex returns an index that a linearizable read must wait for
// (WaitApplied). Only the leader answers: it confirms with a quorum that
// it still leads.
func (n *Node) ReadIndex() (uint64, error) {
	if err := n.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return 0, fmt.Errorf("raftnode: verify leadership: %w", err)
	}
	return n.raft.CommitIndex(), nil
}

// AddVoter makes the node id at Raft address addr a voting member. It
// runs on the leader.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	return n.addServer(ctx, id, addr, true)
}

// AddNonvoter makes the node id at Raft address addr a member that
// receives the log but does not vote: its addition commits without it,
// and it can catch up before it is made a voter. It runs on the leader.
func (n *Node) AddNonvoter(ctx context.Context, id, addr string) error {
	return n.addServer(ctx, id, addr, false)
}

func (n *Node) addServer(ctx context.Context, id, addr string, voter bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	add, what := n.raft.AddVoter, "voter"
	if !voter {
		add, what = n.raft.AddNonvoter, "non-voter"
	}
	if err := add(raft.ServerID(id), raft.ServerAddress(addr), 0, timeout(ctx)).Error(); err != nil {
		return fmt.Errorf("raftnode: add %s %s: %w", what, id, err)
	}
	n.log.Info("added "+what, "id", id, "raft_addr", addr)
	return nil
}

// RemoveServer removes node id from the cluster. It runs on the leader.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, timeout(ctx)).Error(); err != nil {
		return fmt.Errorf("raftnode: remove %s: %w", id, err)
	}
	n.log.Info("removed server", "id", id)
	return nil
}

// timeout is what is left of ctx, or 30 s.
func timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return 30 * time.Second
}

// Server is one server of the Raft configuration.
type Server struct {
	ID    string
	Addr  string
	Voter bool
}

// Servers returns the Raft configuration as this node knows it.
func (n *Node) Servers() ([]Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raftnode: configuration: %w", err)
	}
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return out, nil
}

// Status is this node's view of Raft.
type Status struct {
	ID           string
	State        string // Leader, Follower, Candidate or Shutdown
	LeaderID     string
	LeaderAddr   string
	Term         uint64
	AppliedIndex uint64
	CommitIndex  uint64
	LastIndex    uint64
	// LastContact is when a follower last heard from its leader (zero on
	// the leader, or before any contact).
	LastContact time.Time
	// WriteProblem is why the node cannot write its Raft log, or ""
	// (Node.WriteProblem).
	WriteProblem string
}

// Status reports this node's view of Raft.
func (n *Node) Status() Status {
	id, addr := n.Leader()
	st := Status{
		ID: n.cfg.ID, State: n.raft.State().String(), LeaderID: id, LeaderAddr: addr,
		AppliedIndex: n.a.AppliedIndex(), CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex(),
		WriteProblem: n.writes.current(),
	}
	st.Term, _ = strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	if n.raft.State() != raft.Leader {
		st.LastContact = n.raft.LastContact()
	}
	return st
}

// Snapshot asks Raft to take a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close hands leadership to another voter if this node leads others, then
// stops Raft. It is safe to call more than once.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	close(n.stop)
	if n.IsLeader() && n.voters() > 1 {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("leadership transfer before stop", "err", err)
		}
	}
	err := n.raft.Shutdown().Error()
	n.batch.close()
	n.closeParts()
	return err
}

func (n *Node) closeParts() {
	if n.internal != nil {
		n.endInternal()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if n.internal.Shutdown(ctx) != nil {
			n.internal.Close()
		}
		cancel()
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.logs != nil {
		n.logs.Close()
	}
}

func (n *Node) voters() int {
	servers, _ := n.Servers()
	c := 0
	for _, s := range servers {
		if s.Voter {
			c++
		}
	}
	return c
}
