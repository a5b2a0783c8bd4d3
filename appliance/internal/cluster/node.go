// Package cluster is this appliance's membership of its site's Raft
// cluster: the shared Raft node (internal/raftnode) running the site's
// state machine (package site) over the store, and what an appliance adds
// to it: writes and linearizable reads that a follower sends to the
// leader (forward.go), member records with each node's addresses and key,
// the node registering its own, joining, and the cluster's status and
// health.
//
// Every node, not only the leader, serves its artifacts to the others
// on the Raft port (SetArtifactHandler, package artifacts), reached with
// PeerClient.
//
// Raft and the calls between nodes go over mutual TLS between members
// only (pki.go): the site's CA is derived from the site key, each node
// has its own key pair and a certificate from that CA, and a peer is
// admitted only if its member record pins its key. Removing a member
// deletes its record and so revokes it.
//
// It implements site.Log: the proposer commits through it. Only the app
// (and tests) import it; edges see the site through small interfaces.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/tracing"
)

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
	// Identity is the node's key pair and certificate (internal/pki),
	// presented on the Raft port.
	Identity *pki.Identity
	// CA is the site's CA (SiteCA), if the node has the site key; a node
	// about to join gets it with the key (SetCA).
	CA *pki.Authority
	// Timing is Raft's failure detection; the zero Timing is
	// raftnode.LANTiming.
	Timing raftnode.Timing
	// Probe is a follower's check of a silent leader's port; the zero
	// Probe is raftnode.LANProbe, and a negative After disables it.
	Probe raftnode.Probe
	// Tuning overrides Raft's settings after Timing (tests); nil keeps
	// them.
	Tuning func(*raft.Config)
	// Log receives the node's and Raft's logs.
	Log *slog.Logger
}

// Node is one member of the site's cluster.
type Node struct {
	cfg  Config
	log  *slog.Logger
	db   *store.DB
	raft *raftnode.Node
	// members proposes this node's own member records.
	members *site.Proposer

	// trust holds the site's CA certificates of the generations the
	// store names, which follower keeps, with the node's certificate,
	// once the node has the site key (ca.go).
	trust    *pki.Trust
	follower atomic.Pointer[pki.Follower]
	followed atomic.Pointer[followed]       // followCA
	reported atomic.Pointer[reportedMember] // reportGeneration
	// commandsReported is 1 + the leader changes seen when the node last
	// reported the command types it applies (reportCommands); 0: never.
	commandsReported atomic.Uint64
	// stopWatch ends watchCA, which closes watchDone.
	stopWatch context.CancelFunc
	watchDone chan struct{}
	// opened is closed once raft is set: the internal handlers wait for
	// it.
	opened chan struct{}
	// artifacts answers PathArtifacts (SetArtifactHandler); peerClient
	// reaches the other members' (PeerClient).
	artifacts  atomic.Pointer[http.Handler]
	peerClient *http.Client
	// spans is this node's span store (SetSpanStore), served to the
	// other members (spans.go).
	spans atomic.Pointer[tracing.Store]
}

// Open starts the node's Raft over db. The caller owns db and closes it
// after Close.
func Open(cfg Config, db *store.DB) (*Node, error) {
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Timing == (raftnode.Timing{}) {
		cfg.Timing = raftnode.LANTiming
	}
	if cfg.Probe == (raftnode.Probe{}) {
		cfg.Probe = raftnode.LANProbe
	}
	if cfg.Identity == nil {
		return nil, errors.New("cluster: the node has no identity (pki.LoadIdentity)")
	}
	n := &Node{cfg: cfg, log: cfg.Log, db: db, trust: pki.NewTrust(ClusterName), opened: make(chan struct{})}
	if err := n.finishRotation(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.checkOwnKey()
	if cfg.CA != nil {
		if err := n.SetCA(cfg.CA); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	r, err := raftnode.Open(raftnode.Config{
		ID: cfg.ID, Dir: cfg.Dir, BindAddr: cfg.BindAddr, AdvertiseAddr: cfg.AdvertiseAddr,
		Bootstrap: cfg.Bootstrap, Timing: cfg.Timing, Probe: cfg.Probe, Tuning: cfg.Tuning, Log: cfg.Log,
		TLS: &raftnode.TLS{Identity: cfg.Identity, Trust: n.trust, Member: n.memberKey, Internal: n.internalHandler()},
	}, site.NewStateMachine(db, cfg.Log))
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.raft = r
	if c := r.HTTPClient(); c != nil {
		n.peerClient = &http.Client{Transport: c.Transport}
	}
	close(n.opened)
	n.members = site.NewProposer(site.ProposerConfig{Log: n, Store: db})
	ctx, cancel := context.WithCancel(context.Background())
	n.stopWatch, n.watchDone = cancel, make(chan struct{})
	go n.watchCA(ctx)
	return n, nil
}

// ID is the node's ID.
func (n *Node) ID() string { return n.cfg.ID }

// DB is the node's store.
func (n *Node) DB() *store.DB { return n.db }

// LeaderEpoch counts the times this node has become a ready leader (see
// IsReadyLeader). A subsystem that keeps state only the leader maintains
// (the DHCP server's allocators) rebuilds it from the store when the epoch
// moves, because other leaders may have changed the store in between.
func (n *Node) LeaderEpoch() uint64 { return n.raft.Epoch() }

// IsReadyLeader reports whether this node leads and its store has applied
// everything committed before its term. Leader-only work that reads the
// store to decide (DHCP answers) waits for this.
func (n *Node) IsReadyLeader() bool { return n.raft.IsReady() }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.IsLeader() }

// OnLeadership registers fn, called with true when this node becomes a
// ready leader and with false when it stops leading.
func (n *Node) OnLeadership(fn func(ready bool)) { n.raft.OnLeadership(fn) }

// LeaderChanges counts the times this node has seen the site's
// leadership move since it started: to another node or to a later term.
func (n *Node) LeaderChanges() uint64 { return n.raft.LeaderChanges() }

// WriteErrors counts the failed writes of this node's Raft log since it
// started (raftnode.Node.WriteErrors).
func (n *Node) WriteErrors() uint64 { return n.raft.WriteErrors() }

// WriteProblem is why this node cannot write its Raft log (a full disk),
// or "" (raftnode.Node.WriteProblem).
func (n *Node) WriteProblem() string { return n.raft.WriteProblem() }

// LeaderProbes counts this node's probes of a silent leader by verdict
// (raftnode.Verdicts).
func (n *Node) LeaderProbes() map[string]uint64 { return n.raft.ProbeCounts() }

// Term is this node's current Raft term.
func (n *Node) Term() uint64 { return n.raft.Term() }

// Commit commits a command and returns its result (site.Log). On a
// follower it is forwarded to the leader; with no leader it waits for one
// until ctx ends (site.ErrNoLeader). A domain refusal is the Result's Err.
func (n *Node) Commit(ctx context.Context, cmd []byte) (site.Result, error) {
	for {
		if n.IsLeader() {
			r, err := n.commitLocal(ctx, cmd)
			if !errors.Is(err, raftnode.ErrNotLeader) {
				return r, err
			}
		} else if leader := n.leaderInternal(); leader != "" {
			// Retried only when the leader surely did not take it
			// (errRetry): a command is never applied twice.
			r, err := n.forwardCommit(ctx, leader, cmd)
			if !errors.Is(err, errRetry) {
				return r, err
			}
		}
		if err := n.waitLeader(ctx); err != nil {
			return site.Result{}, err
		}
	}
}

// commitLocal commits a command through this node's Raft, which must lead.
func (n *Node) commitLocal(ctx context.Context, cmd []byte) (site.Result, error) {
	_, resp, err := n.raft.Propose(ctx, cmd)
	switch {
	case errors.Is(err, raftnode.ErrUnknownOutcome):
		return site.Result{}, fmt.Errorf("%w: %w", site.ErrUnknownOutcome, err)
	case err != nil:
		return site.Result{}, err
	}
	r, ok := resp.(site.Result)
	if !ok {
		return site.Result{}, fmt.Errorf("cluster: unexpected apply response %T", resp)
	}
	return r, nil
}

// waitLeader sleeps briefly so that an election can finish.
func (n *Node) waitLeader(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", site.ErrNoLeader, ctx.Err())
	case <-t.C:
		return nil
	}
}

// leaderInternal returns the base URL of the current leader's internal
// endpoints, on its Raft port, if a leader is known.
func (n *Node) leaderInternal() string {
	if _, addr := n.raft.Leader(); addr != "" {
		return "https://" + addr
	}
	return ""
}

// Linearize waits until this node's store reflects every write committed
// before the call, so a read that follows sees them all.
func (n *Node) Linearize(ctx context.Context) error {
	for {
		var idx uint64
		var err error
		if n.IsLeader() {
			idx, err = n.raft.ReadIndex()
		} else if leader := n.leaderInternal(); leader != "" {
			idx, err = n.forwardReadIndex(ctx, leader)
		} else {
			err = errRetry
		}
		if err == nil {
			return n.raft.WaitApplied(ctx, idx)
		}
		if werr := n.waitLeader(ctx); werr != nil {
			return fmt.Errorf("cluster: linearizable read: %w", err)
		}
	}
}

// WaitApplied blocks until the store has applied idx.
func (n *Node) WaitApplied(ctx context.Context, idx uint64) error {
	return n.raft.WaitApplied(ctx, idx)
}

// RemoveServer removes a node from the cluster and forgets its record,
// which revokes its certificate: the Raft port refuses its connections
// and cuts those it has open.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if !n.IsLeader() {
		return fmt.Errorf("cluster: remove %s: %w (ask the leader)", id, raftnode.ErrNotLeader)
	}
	if err := n.raft.RemoveServer(ctx, id); err != nil {
		return err
	}
	return n.members.Delete(ctx, site.Members, id, 0)
}

// RegisterSelf makes sure this node's Member record names its current
// addresses and key, retrying until it is committed or ctx ends. A node
// of release b482c18, whose record pins no key, pins its own this way.
func (n *Node) RegisterSelf(ctx context.Context) error {
	for {
		if n.recorded() {
			return nil
		}
		if n.inConfiguration() {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := n.registerSelf(cctx)
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

// self is this node's member record as it should be.
func (n *Node) self() store.Member {
	return store.Member{ID: n.cfg.ID, RaftAddr: n.cfg.AdvertiseAddr, APIAddr: n.cfg.APIURL,
		Fingerprint: n.cfg.Identity.Fingerprint(), CAGeneration: n.certGeneration(), Commands: uint8(site.HighestCommand())}
}

// recorded reports whether the store holds this node's record as it
// should be.
func (n *Node) recorded() bool {
	self := n.self()
	var cur *store.Member
	_ = n.db.View(func(tx *store.Tx) error { cur, _ = store.Get[store.Member](tx, n.cfg.ID); return nil })
	return cur != nil && cur.RaftAddr == self.RaftAddr && cur.APIAddr == self.APIAddr &&
		cur.Fingerprint == self.Fingerprint && cur.NextFingerprint == "" && cur.Commands == self.Commands &&
		(self.CAGeneration == 0 || cur.Generation() == self.CAGeneration)
}

// registerSelf commits this node's record unless the store holds it.
//
// A record put again is the same record, so a put whose outcome is
// unknown (leadership lost while it committed: a reset of the Raft
// connections, as a key rotation makes, can outlast a short leader lease
// on a busy host) is put again rather than failed.
func (n *Node) registerSelf(ctx context.Context) error {
	for {
		if n.recorded() {
			return nil
		}
		self := n.self()
		err := n.members.PutMember(ctx, &self)
		if !errors.Is(err, site.ErrUnknownOutcome) || ctx.Err() != nil {
			return err
		}
		n.log.Info("putting this node's member record again: leadership moved while it was committed", "err", err)
	}
}

func (n *Node) inConfiguration() bool {
	servers, err := n.raft.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.ID == n.cfg.ID {
			return true
		}
	}
	return false
}

// Close hands leadership to another voter if this node leads, then stops
// Raft. It is safe to call more than once.
func (n *Node) Close() error {
	n.stopWatch()
	<-n.watchDone
	return n.raft.Close()
}

// Snapshot asks Raft to take a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot() }
