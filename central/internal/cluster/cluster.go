// Package cluster is what a replicated central adds to the shared Raft
// node (internal/raftnode), whose state machine is central's store: the
// member records that say where each node's API is, so that a follower
// can send requests to the leader (LeaderAPI); the node's own record,
// kept current each time it starts to lead; and the membership calls of
// the API, which add or remove a node and its record together; and,
// during a rolling upgrade, the leader's check that every member applies
// a command type newer than store.LastUnreported before it proposes one
// (skew.go). A single central needs none of it.
//
// Only the leader serves: the app sends every API request and site
// connection a follower gets to the leader (LeaderInternal: over the Raft
// port's mutual TLS, to the Internal handler), and ends its site sessions
// when it stops leading (OnLeadership). What every node serves its peers
// for itself (an artifact's bytes, the command types it applies) is the
// Peer handler, under PeerPrefix on the same port, to members only. The key a joining node needs is
// handed over by the store (store.DB.SealKeyFor, store.SaveJoinKey).
//
// Raft and the calls between nodes go over mutual TLS between members
// only (pki.go): central's CA is derived from central's key, each node
// has its own key pair and a certificate from that CA, and a peer is
// admitted only if its member record pins its key. Removing a member
// deletes its record and so revokes it.
package cluster

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
)

// ErrNotLeader is returned by the membership calls on a node that does
// not lead, and wrapped in store.ErrNotApplied by changes proposed there.
var ErrNotLeader = raftnode.ErrNotLeader

// Config configures a Node: the Raft node's configuration (its TLS is
// the cluster's to set), and this node's API.
type Config struct {
	raftnode.Config
	// APIURL is this node's API, recorded in its member record.
	APIURL string
	// Identity is this node's key pair and certificate (internal/pki).
	Identity *pki.Identity
	// Internal is served to the other members on the Raft port while this
	// node leads (503 otherwise): the requests a follower sends on to the
	// leader (LeaderInternal). Nil serves nothing.
	Internal http.Handler
	// Peer is served to the other members on the Raft port under
	// PeerPrefix whether or not this node leads: the calls between
	// members that any node answers (an artifact's bytes, package
	// artifacts). Nil serves nothing there.
	Peer http.Handler
}

// PeerPrefix is the path under which Config.Peer is served to members.
// Nothing under it is served on the API's listener, nor sent on to the
// leader: it is for members only.
const PeerPrefix = "/internal/"

// Node is one member of central's Raft cluster.
type Node struct {
	raft  *raftnode.Node
	db    *store.DB
	self  store.Member
	log   *slog.Logger
	ident *pki.Identity
	trust *pki.Trust
	// follower keeps trust and the node's certificate at the CA
	// generations the store records (ca.go).
	follower *pki.Follower
	// stopWatch ends watchCA, which closes watchDone.
	stopWatch context.CancelFunc
	watchDone chan struct{}
	// commands is what the leader knows of the command types each
	// member applies (skew.go).
	commands *memberCommands
}

// Open starts the node's Raft over db, and makes db propose its changes
// through it. The caller closes db after Close.
func Open(cfg Config, db *store.DB) (*Node, error) {
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = cfg.BindAddr
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Identity == nil {
		return nil, errors.New("cluster: the node has no identity (pki.LoadIdentity)")
	}
	ca, err := CentralCA(db)
	if err != nil {
		return nil, err
	}
	n := &Node{db: db, log: cfg.Log, ident: cfg.Identity, trust: pki.NewTrust(ClusterName),
		self: store.Member{ID: cfg.ID, RaftAddr: cfg.AdvertiseAddr, APIURL: cfg.APIURL, Fingerprint: cfg.Identity.Fingerprint()}}
	n.follower = pki.NewFollower(ca, n.trust, cfg.Identity, []string{cfg.AdvertiseAddr, cfg.APIURL})
	if err := n.followCA(); err != nil {
		return nil, err
	}
	opened := make(chan struct{})
	cfg.TLS = &raftnode.TLS{Identity: cfg.Identity, Trust: n.trust, Member: n.memberKey, Internal: n.internal(cfg.Internal, cfg.Peer, opened)}
	rn, err := raftnode.Open(cfg.Config, db)
	if err != nil {
		return nil, err
	}
	n.raft = rn
	close(opened)
	n.commands = &memberCommands{self: cfg.ID, servers: rn.Servers, epoch: rn.Epoch, ask: n.askCommands, log: cfg.Log}
	db.SetCommandCheck(n.checkCommands)
	db.SetProposer(rn)
	rn.OnLeadership(func(ready bool) {
		if ready {
			n.registerSelf()
		}
	})
	if rn.IsReady() { // it led before the observer was there
		n.registerSelf()
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.stopWatch, n.watchDone = cancel, make(chan struct{})
	go n.watchCA(ctx)
	return n, nil
}

// registerSelf records this node's addresses if its member record does
// not hold them yet.
func (n *Node) registerSelf() {
	self := n.self
	_, self.CAGeneration = n.follower.State()
	if m, err := n.db.Member(n.self.ID); err == nil && *m == self {
		return
	}
	if err := n.db.PutMember(&self); err != nil {
		n.log.Warn("recording this node's addresses", "err", err)
	}
}

// ID is the node's id.
func (n *Node) ID() string { return n.raft.ID() }

// IsLeader reports whether this node leads and has applied everything
// committed before its term, so that it answers from a current store.
func (n *Node) IsLeader() bool { return n.raft.IsReady() }

// OnLeadership registers fn, called with true when this node becomes a
// ready leader and with false when it stops leading.
func (n *Node) OnLeadership(fn func(leader bool)) { n.raft.OnLeadership(fn) }

// LeaderAPI returns the API URL of the leader, if there is one and its
// member record is known.
func (n *Node) LeaderAPI() string {
	id, _ := n.raft.Leader()
	if id == "" {
		return ""
	}
	m, err := n.db.Member(id)
	if err != nil {
		return ""
	}
	return m.APIURL
}

// AddVoter records m, pinned to the key its Fingerprint names, and makes
// it a voting member. The record comes first: the leader admits the
// node's connections by it; and the leader records its own key before,
// if it has not yet, so that the node can trust it (Members). It runs on
// the leader.
func (n *Node) AddVoter(ctx context.Context, m *store.Member) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if !n.IsLeader() {
		return ErrNotLeader
	}
	n.registerSelf()
	if err := n.db.PutMember(m); err != nil {
		return err
	}
	return n.raft.AddVoter(ctx, m.ID, m.RaftAddr)
}

// RemoveServer removes a member from the cluster and forgets its record,
// which revokes its certificate: the Raft port refuses its connections
// and cuts those it has open. It runs on the leader.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if err := n.raft.RemoveServer(ctx, id); err != nil {
		return err
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
	// Members are the member records: addresses, the key each is
	// pinned to, and the CA generation of its certificate.
	Members []*store.Member `json:"members"`
	// CA is where the rotation of central's CA stands.
	CA CAStatus `json:"ca"`
}

// Status reports this node's view of the cluster.
func (n *Node) Status() Status {
	rs := n.raft.Status()
	st := Status{
		ID: rs.ID, State: rs.State, Leader: rs.LeaderID, LeaderAPI: n.LeaderAPI(),
		AppliedIndex: rs.AppliedIndex, CommitIndex: rs.CommitIndex, Voters: []string{},
	}
	servers, err := n.raft.Servers()
	if err != nil {
		n.log.Warn("reading the raft configuration", "err", err)
	}
	for _, s := range servers {
		if s.Voter {
			st.Voters = append(st.Voters, s.ID)
		}
	}
	if st.Members, err = n.db.Members(); err != nil {
		n.log.Warn("reading the member records", "err", err)
	}
	st.CA = n.caStatus(st.Members)
	return st
}

// Snapshot asks Raft to take a snapshot now (tests, operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot() }

// Close hands leadership over if this node leads others, then stops Raft.
// It is safe to call more than once.
func (n *Node) Close() error {
	n.stopWatch()
	<-n.watchDone
	return n.raft.Close()
}
