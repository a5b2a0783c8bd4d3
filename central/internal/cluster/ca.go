package cluster

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
)

// Central's CA is rotated in two steps that its store records
// (store.DB.RotateCA), as a site's is (see the appliance's cluster
// package): each node follows the store (watchCA), trusting the
// generations it names and renewing its certificate under the current
// one, and reports that in its member record, which finish checks. A
// node stopped during a rotation renews at start to what its store
// records.

// CAGenerations is where the rotation of central's CA stands as this
// node follows it: Trusted() are the generations it admits, Current the
// one its certificate is issued under. Anything else derived from
// central's key by generation (the API's HTTPS CA) follows the same.
func (n *Node) CAGenerations() pki.Generations {
	if g, _ := n.follower.State(); g.Current != 0 {
		return g
	}
	return pki.Initial
}

// followCA brings the node's trust and certificate to what its store
// records, and cuts its Raft connections when its certificate changed,
// so that they are made again with the new one.
func (n *Node) followCA() error {
	c, err := n.db.CA()
	if err != nil {
		return fmt.Errorf("cluster: read the CA generation: %w", err)
	}
	gens := pki.Generations{Current: c.Generation, Previous: c.Previous}
	renewed, err := n.follower.Follow(gens)
	if err != nil {
		return err
	}
	if renewed {
		_, gen := n.follower.State()
		n.log.Info("renewed the node's certificate under central's CA", "generation", gen, "trusted", gens.Trusted())
		if n.raft != nil {
			n.raft.ResetConnections()
		}
	}
	return nil
}

// reportGeneration, on the leader, makes the member records name the
// generation of each node's certificate: its own, and those its peers
// presented on their open Raft connections (central's followers do not
// propose). A follower that renewed is seen with its new certificate as
// soon as it has made its connections again, which it does at once.
func (n *Node) reportGeneration() error {
	if !n.IsLeader() {
		return nil
	}
	gens, own := n.follower.State()
	seen := map[string]uint64{n.self.ID: own}
	for id, cert := range n.raft.PeerCertificates() {
		if g, ok := n.follower.Authority().GenerationOf(cert, gens); ok {
			seen[id] = max(seen[id], g)
		}
	}
	for id, gen := range seen {
		m, err := n.db.Member(id)
		// A generation only rises: a lower one is a connection made
		// before the node renewed (pooled, or in flight when it reset
		// its connections), not the node's certificate now.
		if err != nil || gen <= m.Generation() {
			continue
		}
		m.CAGeneration = gen
		if err := n.db.PutMember(m); err != nil {
			return fmt.Errorf("cluster: record %s's CA generation %d: %w", id, gen, err)
		}
	}
	if members, err := n.db.Members(); err == nil && slices.ContainsFunc(members, func(m *store.Member) bool { return m.Generation() != gens.Current }) {
		return raftnode.ErrAgain // a member to see again once it has renewed
	}
	return nil
}

// watchCA follows the store's CA generation each time the store applies
// something, until ctx ends.
func (n *Node) watchCA(ctx context.Context) {
	defer close(n.watchDone)
	n.raft.EachApplied(ctx, time.Second, "following central CA's generation", func(context.Context) error {
		if err := n.followCA(); err != nil {
			return err
		}
		return n.reportGeneration()
	})
}

// RotateCA takes a step of a rotation of central's CA (store.CABegin,
// store.CAFinish) by the actor by, on the leader, and returns where it
// stands once this node follows it.
func (n *Node) RotateCA(step, by string) (store.CA, error) {
	if !n.IsLeader() {
		return store.CA{}, ErrNotLeader
	}
	c, err := n.db.RotateCA(step, by)
	if err != nil {
		return store.CA{}, err
	}
	return c, n.followCA()
}

// CAStatus is where the rotation of central's CA stands: the generation
// node certificates are issued under, whether a rotation is under way,
// the CAs trusted (the previous generation's too while it is), and the
// members that have not renewed under the current one.
type CAStatus struct {
	Generation uint64   `json:"generation"`
	Rotating   bool     `json:"rotating"`
	CAs        []CAInfo `json:"cas"`
	NotRenewed []string `json:"not_renewed,omitempty"`
}

// CAInfo is one generation of central's CA.
type CAInfo struct {
	Generation uint64 `json:"generation"`
	// Fingerprint is the SHA-256 of the CA's certificate.
	Fingerprint string `json:"fingerprint"`
}

// caStatus is the CA part of Status.
func (n *Node) caStatus(members []*store.Member) CAStatus {
	gens := n.CAGenerations()
	st := CAStatus{Generation: gens.Current, Rotating: gens.Rotating(), CAs: []CAInfo{}}
	for _, g := range []uint64{gens.Previous, gens.Current} {
		if ca, err := n.follower.Authority().CA(g); g != 0 && err == nil {
			st.CAs = append(st.CAs, CAInfo{Generation: g, Fingerprint: ca.Fingerprint()})
		}
	}
	for _, m := range members {
		if m.Generation() != gens.Current {
			st.NotRenewed = append(st.NotRenewed, m.ID)
		}
	}
	return st
}
