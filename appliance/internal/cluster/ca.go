package cluster

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
)

// The site's CA is rotated in two steps that the store records (package
// site's SetCAGeneration): begin makes generation g+1 current with g
// still trusted, finish drops g once every member has renewed. Each node
// follows the store (watchCA): whenever it applies something, it trusts
// the generations the store names (pki.Generations.Trusted), renews its
// certificate under the current one, and reports that in its member
// record, which finish checks.
//
// A node that was stopped during a rotation finds, when it starts, what
// its store recorded when it stopped: stopped before it renewed, it
// renews at start, and the others still admit its old certificate,
// since finish waits for it; stopped after it renewed, its certificate
// is of the new generation, which the others trust whether or not they
// have finished. A node whose certificate file is older than what its
// store records (put back from a copy) renews at start from the key it
// holds, since it can derive every generation. Only a member removed to
// let a rotation finish must join again.

// storeGenerations is where the rotation stands in this node's store.
func (n *Node) storeGenerations() (pki.Generations, error) {
	var c *store.CA
	err := n.db.View(func(tx *store.Tx) (err error) { c, err = tx.CA(); return err })
	if err != nil {
		return pki.Generations{}, fmt.Errorf("cluster: read the CA generation: %w", err)
	}
	return pki.Generations{Current: c.Generation, Previous: c.Previous}, nil
}

// CAGenerations is where the site's CA rotation stands as this node
// follows it: Trusted() are the generations it admits, Current the one
// its certificate is issued under. Anything else derived from the site
// key by generation (the API's HTTPS CA) follows the same.
func (n *Node) CAGenerations() pki.Generations {
	if f := n.follower.Load(); f != nil {
		if g, _ := f.State(); g.Current != 0 {
			return g
		}
	}
	g, err := n.storeGenerations()
	if err != nil {
		return pki.Initial
	}
	return g
}

// certGeneration is the generation of the node's certificate, 0 before
// it has the site key.
func (n *Node) certGeneration() uint64 {
	if f := n.follower.Load(); f != nil {
		_, gen := f.State()
		return gen
	}
	return 0
}

// followed is what followCA last brought the node to: the follower, the
// store's generations and the node's certificate after it.
type followed struct {
	f    *pki.Follower
	gens pki.Generations
	cert *x509.Certificate
}

// followCA brings the node's trust and certificate to what its store
// records (pki.Follower), and cuts its Raft connections when its
// certificate changed, so that they are made again with the new one.
// Where neither the store's generations nor the node's certificate moved
// since it last followed (almost every write), there is nothing to check:
// Follow verifies the certificate's signature, which under a write storm
// cost a signature check per store commit.
func (n *Node) followCA() error {
	f := n.follower.Load()
	if f == nil {
		return nil
	}
	gens, err := n.storeGenerations()
	if err != nil {
		return err
	}
	if last := n.followed.Load(); last != nil && last.f == f && last.gens == gens && last.cert == n.cfg.Identity.Certificate() {
		return nil
	}
	renewed, err := f.Follow(gens)
	if err != nil {
		return err
	}
	n.followed.Store(&followed{f: f, gens: gens, cert: n.cfg.Identity.Certificate()})
	if renewed {
		_, gen := f.State()
		n.log.Info("renewed the node's certificate under the site's CA", "generation", gen, "trusted", gens.Trusted())
		if n.raft != nil {
			n.raft.ResetConnections()
		}
	}
	return nil
}

// reportedMember is the node's member record, as stored, that names the
// generation gen: until either changes, reportGeneration has nothing to
// read. It runs at every store commit (watchCA), and a record decoded
// each time cost two fifths of a DHCP lease's commit.
type reportedMember struct {
	gen uint64
	raw []byte // a copy: bbolt's bytes live only as long as their tx
}

// memberToReport reads the node's member record and reports whether it
// names gen already; without reading it again when its stored bytes are
// those that named gen at the last call. m is nil when there is no
// record, or it names gen.
func (n *Node) memberToReport(gen uint64) (m *store.Member, reported bool) {
	_ = n.db.View(func(tx *store.Tx) error {
		raw := tx.Raw(&store.Member{}, n.cfg.ID)
		if r := n.reported.Load(); r != nil && r.gen == gen && bytes.Equal(r.raw, raw) {
			reported = true
			return nil
		}
		m, _ = store.Get[store.Member](tx, n.cfg.ID)
		if m != nil && m.Generation() == gen {
			n.reported.Store(&reportedMember{gen: gen, raw: bytes.Clone(raw)})
			m, reported = nil, true
		}
		return nil
	})
	return m, reported
}

// reportGeneration makes the node's member record name the generation of
// its certificate. A node that has no record yet (joining) is recorded by
// its join; one rotating its key reports with it (RotateKey).
func (n *Node) reportGeneration(ctx context.Context) error {
	gen := n.certGeneration()
	if gen == 0 {
		return nil
	}
	m, reported := n.memberToReport(gen)
	if reported || m == nil || m.NextFingerprint != "" || !n.inConfiguration() {
		return nil
	}
	m.CAGeneration = gen
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.members.PutMember(cctx, m); err != nil {
		return fmt.Errorf("cluster: report CA generation %d: %w", gen, err)
	}
	return nil
}

// watchCA follows the store's CA generation each time the store commits
// a write, until ctx ends; after a failure, again within caRetry even if
// nothing was written. Writes of the DHCP server's leases alone, one per
// offer and ACK, are not waited for (ChangedBesidesLeases): they change
// neither the CA nor a member, and a new leader's no-op (whose term
// reportCommands follows) is a write of its own.
func (n *Node) watchCA(ctx context.Context) {
	defer close(n.watchDone)
	for {
		changed := n.db.ChangedBesidesLeases()
		var retry <-chan time.Time
		if err := n.followAndReport(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("following the site CA's generation; trying again", "err", err)
			retry = time.After(caRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry:
		}
	}
}

// caRetry is how soon watchCA tries again after a failure.
const caRetry = time.Second

// followAndReport brings the node's trust and certificate to the store's
// CA generation, then its member record to them.
func (n *Node) followAndReport(ctx context.Context) error {
	if err := n.followCA(); err != nil {
		return err
	}
	if err := n.reportGeneration(ctx); err != nil {
		return err
	}
	return n.reportCommands(ctx)
}

// reportCommands puts the node's member record again, with the highest
// command type it applies, once after each leader change it sees: a
// node of an older release stores the record without that field, so the
// record is put again when such a node, upgraded, may have come to lead
// (site.Proposer proposes a newer type only once every record has it).
func (n *Node) reportCommands(ctx context.Context) error {
	changes := n.LeaderChanges()
	if n.commandsReported.Load() == changes+1 {
		return nil
	}
	var m *store.Member
	_ = n.db.View(func(tx *store.Tx) error { m, _ = store.Get[store.Member](tx, n.cfg.ID); return nil })
	// A record that does not pin the node's key yet is RegisterSelf's to
	// put, with the command types: a put of it here could undo that.
	if m == nil || m.Fingerprint != n.cfg.Identity.Fingerprint() || m.NextFingerprint != "" || !n.inConfiguration() {
		return nil
	}
	m.Commands = uint8(site.HighestCommand())
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.members.PutMember(cctx, m); err != nil {
		return fmt.Errorf("cluster: report the command types the node applies: %w", err)
	}
	n.commandsReported.Store(changes + 1)
	return nil
}

// RotateCA proposes a step of a rotation of the site's CA (site.CABegin,
// site.CAFinish) and waits until this node follows it: after begin, its
// certificate is of the new generation (its record reports it soon
// after); after finish, it trusts the new generation alone.
func (n *Node) RotateCA(ctx context.Context, step string) (*store.CA, error) {
	c, err := n.members.RotateCA(ctx, step)
	if err != nil {
		return nil, err
	}
	if err := n.WaitApplied(ctx, c.Version); err != nil {
		return nil, err
	}
	return c, n.followCA()
}

// CAStatus is where the site's CA rotation stands, as this node follows
// it (part of Status).
func (n *Node) caStatus() *site.CAStatus {
	gens := n.CAGenerations()
	st := &site.CAStatus{Generation: gens.Current, Rotating: gens.Rotating()}
	var a *pki.Authority
	if f := n.follower.Load(); f != nil {
		a = f.Authority()
	}
	for _, g := range []uint64{gens.Previous, gens.Current} {
		if g == 0 {
			continue
		}
		info := site.CAInfo{Generation: g}
		if a != nil {
			if ca, err := a.CA(g); err == nil {
				info.Fingerprint = ca.Fingerprint()
			}
		}
		st.CAs = append(st.CAs, info)
	}
	return st
}
