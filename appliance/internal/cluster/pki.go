package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/seal"
)

// ClusterName names the site's cluster in its certificates
// (outpost://site/node/<id>).
const ClusterName = "site"

// SiteCA is the site's certificate authority, derived from the site key:
// every node that holds the key computes the same CA, of every
// generation (see internal/pki).
func SiteCA(key *seal.Key) (*pki.Authority, error) {
	return pki.NewAuthority(key.Derive(pki.KeyPurpose), ClusterName)
}

// SiteAPICA is the site's API CA, derived from the site key: the CA of
// every node's HTTPS API, which clients pin (see internal/pki).
func SiteAPICA(key *seal.Key) (*pki.APICA, error) {
	return pki.DeriveAPICA(key.Derive(pki.APIKeyPurpose), ClusterName, pki.Generation)
}

// SetCA gives the node the site's CA, once it has the site key: the node
// trusts the nodes it signed, of the generations its store names, keeps
// its own certificate issued and renewed by it, and issues certificates
// to the nodes that join through it.
func (n *Node) SetCA(a *pki.Authority) error {
	n.follower.Store(pki.NewFollower(a, n.trust, n.cfg.Identity, []string{n.cfg.AdvertiseAddr, n.cfg.APIURL}))
	return n.followCA()
}

// issuer is the CA this node issues certificates under: the generation
// of its own certificate.
func (n *Node) issuer() (*pki.CA, uint64, error) {
	f := n.follower.Load()
	if f == nil {
		return nil, 0, errs.Conflict("this node has no site key yet: ask another member")
	}
	return f.Issuer()
}

// memberKey is the Raft port's lookup of a node in the member records
// (raftnode.TLS.Member): the key fingerprints its record admits (its own,
// and the next during a rotation), and whether it has one.
func (n *Node) memberKey(id string) (keys []string, found bool) {
	_ = n.db.View(func(tx *store.Tx) error {
		if m, err := store.Get[store.Member](tx, id); err == nil {
			keys, found = []string{m.Fingerprint, m.NextFingerprint}, true
		}
		return nil
	})
	return keys, found
}

// SetJoinTrust names the members a joining node admits while its store
// has no record of them (the log or a snapshot brings them).
func (n *Node) SetJoinTrust(members []store.Member) {
	seed := map[string]string{}
	for _, m := range members {
		seed[m.ID] = m.Fingerprint
	}
	n.raft.SetJoinTrust(seed)
}

// Joined reports whether the node's store holds its own member record: a
// node whose join was cut short before it caught up, or that was removed,
// does not.
func (n *Node) Joined() bool {
	_, found := n.memberKey(n.cfg.ID)
	return found
}

// Identity is the node's key pair and certificate.
func (n *Node) Identity() *pki.Identity { return n.cfg.Identity }

// Join admits a node into the site's cluster, on any member: with its
// public key (PKIX DER), the node gets a certificate from the site's CA
// and its record pins that key; without one (the CLI's cluster join), the
// record keeps the key it had, or none until the node registers it. The
// record is committed before the node enters the Raft configuration, as
// a non-voter that catches up without being counted, or, with voter, as a
// voter. It returns the certificate (nil without a key) and the members
// as this node knows them, which the joining node trusts until its store
// has them (SetJoinTrust).
func (n *Node) Join(ctx context.Context, m store.Member, publicKey []byte, voter bool) ([]byte, []store.Member, error) {
	cert, err := n.prepareJoin(&m, publicKey)
	if err != nil {
		return nil, nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	members, err := n.addMember(ctx, m, voter)
	if err != nil {
		return nil, nil, err
	}
	return cert, members, nil
}

// prepareJoin pins m to publicKey and issues its certificate, or keeps
// the key m's record pins.
func (n *Node) prepareJoin(m *store.Member, publicKey []byte) ([]byte, error) {
	if len(publicKey) == 0 {
		_ = n.db.View(func(tx *store.Tx) error {
			if cur, err := store.Get[store.Member](tx, m.ID); err == nil {
				m.Fingerprint, m.CAGeneration = cur.Fingerprint, cur.CAGeneration
			}
			return nil
		})
		return nil, nil
	}
	pub, err := pki.ParsePublicKey(publicKey)
	if err != nil {
		return nil, errs.Invalid("public_key", "%v", err)
	}
	ca, gen, err := n.issuer()
	if err != nil {
		return nil, err
	}
	m.CAGeneration = gen
	if m.Fingerprint, err = pki.KeyFingerprint(pub); err != nil {
		return nil, errs.Invalid("public_key", "%v", err)
	}
	cert, err := ca.Issue(m.ID, pub, []string{m.RaftAddr, m.APIURL()}, time.Now())
	if err != nil {
		return nil, errs.Invalid("id", "%v", err)
	}
	return cert, nil
}

// addMember records m and adds it to the Raft configuration, on the
// leader (a follower forwards it), and returns the members as the leader
// knows them then. The leader records its own key first, if it has not
// yet (a bootstrap node registering itself), so the list names it.
func (n *Node) addMember(ctx context.Context, m store.Member, voter bool) ([]store.Member, error) {
	if !n.IsLeader() {
		leader := n.leaderInternal()
		if leader == "" {
			return nil, fmt.Errorf("cluster: join %s: %w", m.ID, site.ErrNoLeader)
		}
		return n.forwardJoin(ctx, leader, joinBody{Member: m, Voter: voter})
	}
	if err := n.registerSelf(ctx); err != nil {
		return nil, err
	}
	// The record before the configuration: the leader admits the node's
	// connections by it.
	if err := n.members.PutMember(ctx, &m); err != nil {
		return nil, err
	}
	var err error
	if voter {
		err = n.raft.AddVoter(ctx, m.ID, m.RaftAddr)
	} else {
		err = n.raft.AddNonvoter(ctx, m.ID, m.RaftAddr)
	}
	if err != nil {
		return nil, err
	}
	return n.memberList()
}

// memberList is every member record of the store.
func (n *Node) memberList() ([]store.Member, error) {
	var members []store.Member
	err := n.db.View(func(tx *store.Tx) error {
		ms, err := store.List[store.Member](tx)
		for _, m := range ms {
			members = append(members, *m)
		}
		return err
	})
	return members, err
}

// WaitRecorded waits until the node's store holds its own member record
// pinned to its key: a joining node has then caught up with the log up to
// its admission, and can be made a voter without holding the cluster up.
func (n *Node) WaitRecorded(ctx context.Context) error {
	fp := n.cfg.Identity.Fingerprint()
	return n.waitRecord(ctx, func(m *store.Member) bool { return m.Fingerprint == fp })
}

// waitRecord waits until the node's store holds its own member record and
// ok says it is as wanted.
func (n *Node) waitRecord(ctx context.Context, ok func(*store.Member) bool) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		var m *store.Member
		_ = n.db.View(func(tx *store.Tx) error { m, _ = store.Get[store.Member](tx, n.cfg.ID); return nil })
		if m != nil && ok(m) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for this node's member record: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// RotateKey gives the node a new key pair, in steps that survive a crash
// between any two (see internal/pki): the new key is staged, and the
// node's record names it beside the old one, committed with the old key;
// once this node's store has it, the new key becomes the node's own (with
// a certificate from the CA), and the record pins it alone, committed
// with the new key. Peers cut the old key's connections as soon as the
// record no longer names it.
func (n *Node) RotateKey(ctx context.Context) error {
	next, err := n.cfg.Identity.StageKey()
	if err != nil {
		return err
	}
	self := n.self()
	self.NextFingerprint = next
	if err := n.members.PutMember(ctx, &self); err != nil {
		return fmt.Errorf("cluster: rotate the key: %w", err)
	}
	if err := n.waitRecord(ctx, func(m *store.Member) bool { return m.NextFingerprint == next }); err != nil {
		return err
	}
	if err := n.cfg.Identity.CommitKey(); err != nil {
		return err
	}
	n.raft.ResetConnections()
	n.log.Info("rotated the node's key", "key", next)
	return n.registerSelf(ctx)
}

// checkOwnKey warns when the node's member record pins a key the node no
// longer has (its node.key was lost or replaced): the other members refuse
// it until it is removed and joins again.
func (n *Node) checkOwnKey() {
	var m *store.Member
	_ = n.db.View(func(tx *store.Tx) error { m, _ = store.Get[store.Member](tx, n.cfg.ID); return nil })
	fp := n.cfg.Identity.Fingerprint()
	if m != nil && m.Fingerprint != "" && m.Fingerprint != fp && m.NextFingerprint != fp {
		n.log.Error("this node's key is not the one its member record pins: the other members will refuse it; "+
			"restore its node.key, or remove it (outpost cluster remove) and join it again",
			"id", n.cfg.ID, "key", fp, "recorded", m.Fingerprint)
	}
}

// finishRotation completes a key rotation a stop cut short: a staged key
// the node's record names becomes the node's own (RegisterSelf then pins
// it alone); one it does not name is dropped.
func (n *Node) finishRotation() error {
	next, staged, err := n.cfg.Identity.Staged()
	if err != nil || !staged {
		return err
	}
	var m *store.Member
	_ = n.db.View(func(tx *store.Tx) error { m, _ = store.Get[store.Member](tx, n.cfg.ID); return nil })
	if m != nil && m.NextFingerprint == next {
		n.log.Info("finishing a key rotation", "key", next)
		return n.cfg.Identity.CommitKey()
	}
	return n.cfg.Identity.DropStaged()
}

// AskJoin asks a member of the cluster to admit a node (Node.Join): the
// app asks through a member's API, tests ask a node in their process.
type AskJoin func(ctx context.Context, m store.Member, publicKey []byte, voter bool) (cert []byte, members []store.Member, err error)

// JoinWith joins this node to a cluster in two steps: it is admitted as
// a non-voter pinned to its key, installs the certificate it gets,
// trusts the members it is told of, and takes the site's CA from ca
// (which the first answer makes known: the site key comes with it); once
// its store has caught up to its own record, it asks to vote.
func (n *Node) JoinWith(ctx context.Context, ask AskJoin, ca func() (*pki.Authority, error)) error {
	self := store.Member{ID: n.cfg.ID, RaftAddr: n.cfg.AdvertiseAddr, APIAddr: n.cfg.APIURL}
	pub := n.cfg.Identity.PublicKeyDER()
	cert, members, err := ask(ctx, self, pub, false)
	if err != nil {
		return err
	}
	c, err := ca()
	if err != nil {
		return err
	}
	if err := n.cfg.Identity.SetCertificate(cert); err != nil {
		return fmt.Errorf("cluster: join: %w", err)
	}
	n.SetJoinTrust(members)
	if err := n.SetCA(c); err != nil {
		return err
	}
	n.log.Info("admitted to the cluster as a non-voter; catching up", "key", n.cfg.Identity.Fingerprint())
	if err := n.WaitRecorded(ctx); err != nil {
		return err
	}
	_, _, err = ask(ctx, self, pub, true)
	return err
}
