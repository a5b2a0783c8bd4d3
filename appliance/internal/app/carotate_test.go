package app

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/seal"
)

// threeNodes starts n1, which leads, and n2 and n3 joined to it.
func threeNodes(ctx context.Context, t *testing.T, key *seal.Key) []*rotNode {
	n1, n2 := twoNodes(ctx, t, key)
	n3 := &rotNode{id: "n3", dir: t.TempDir(), addr: apptest.FreeAddr(t)}
	n3.open(t, key, false)
	apptest.JoinNode(ctx, t, key, n3.node, n1.node)
	return []*rotNode{n1, n2, n3}
}

// saveIdentity copies r's key and certificate aside and loads them: the
// node as it is now, to attack with or to put back later.
func saveIdentity(t *testing.T, r *rotNode) (*pki.Identity, string) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{pki.KeyFile, pki.CertFile} {
		raw, err := os.ReadFile(filepath.Join(r.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ident, err := pki.LoadIdentity(dir, r.id)
	if err != nil {
		t.Fatal(err)
	}
	return ident, dir
}

// heartbeat sends an RPC of term 0 (which changes nothing) to addr with
// ident's certificate, trusting the CAs of gens.
func heartbeat(t *testing.T, addr string, ident *pki.Identity, auth *pki.Authority, gens pki.Generations) error {
	t.Helper()
	certs, err := auth.Certificates(gens)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rafttest.Dial(addr, pki.ClientConfig(ident, pki.NewTrust(cluster.ClusterName, certs...), nil, raftnode.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Heartbeat(0)
	return err
}

// write records an event through r and waits until every node of nodes
// has applied it: the cluster commits.
func write(ctx context.Context, t *testing.T, key *seal.Key, r *rotNode, nodes ...*rotNode) {
	t.Helper()
	s := cluster.NewSite(r.node, site.ProposerConfig{Key: key})
	idx, err := s.RecordEvent(ctx, store.Event{Kind: "note", Message: "through " + r.id})
	if err != nil {
		t.Fatalf("a write through %s: %v", r.id, err)
	}
	for _, n := range nodes {
		if err := n.node.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("%s applying the write through %s: %v", n.id, r.id, err)
		}
	}
}

// certGeneration is the generation of r's CA that signed its current
// certificate, 0 if none of 1..3 did.
func certGeneration(auth *pki.Authority, r *rotNode) uint64 {
	cert := r.node.Identity().Certificate()
	for g := uint64(1); g <= 3; g++ {
		if ca, _ := auth.CA(g); cert != nil && cert.CheckSignatureFrom(ca.Certificate()) == nil {
			return g
		}
	}
	return 0
}

// renewed reports whether db's record of id reports generation gen.
func renewed(db *store.DB, id string, gen uint64) bool {
	m := record(db, id)
	return m != nil && m.Generation() == gen
}

// A three-node site rotates its CA. n3 is stopped before the rotation
// begins: finish is refused naming it; started again, it is admitted
// with its old certificate, renews and reports it. n2 is stopped after
// it renewed and comes back holding its generation-1 certificate (its
// file put back) after the rotation finished: it renews at start from
// its key and rejoins. After finish, a generation-1 certificate of a
// member's own key is refused on the Raft port.
func TestRotateCA(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := cluster.SiteCA(key)
	if err != nil {
		t.Fatal(err)
	}
	nodes := threeNodes(ctx, t, key)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	old2, oldDir2 := saveIdentity(t, n2)
	if err := heartbeat(t, n1.addr, old2, auth, pki.Initial); err != nil {
		t.Fatalf("n2's certificate before the rotation: %v; the attack below tests nothing", err)
	}

	n3.node.Close()
	c, err := n2.node.RotateCA(ctx, site.CABegin)
	if err != nil || c.Generation != 2 || c.Previous != 1 {
		t.Fatalf("begin: %+v, %v; want generation 2 after 1", c, err)
	}
	waitFor(t, "n1 and n2 to report generation 2", func() bool { return renewed(n1.db, "n1", 2) && renewed(n1.db, "n2", 2) })
	for _, r := range []*rotNode{n1, n2} {
		if g := certGeneration(auth, r); g != 2 {
			t.Errorf("%s's certificate is of generation %d, want 2", r.id, g)
		}
	}
	write(ctx, t, key, n2, n1, n2)
	st := n1.node.Status()
	if st.CA == nil || st.CA.Generation != 2 || !st.CA.Rotating || len(st.CA.CAs) != 2 {
		t.Errorf("the status's CA during the rotation: %+v", st.CA)
	}

	_, err = n1.node.RotateCA(ctx, site.CAFinish)
	if e, ok := errs.AsError(err); !ok || e.Code != errs.CodeConflict || !strings.Contains(e.Message, "n3 (generation 1)") || strings.Contains(e.Message, "n2") {
		t.Fatalf("finish with n3 stopped: %v, want a conflict naming n3 alone", err)
	}

	n3.open(t, key, false)
	waitFor(t, "n3 to report generation 2", func() bool { return renewed(n1.db, "n3", 2) })
	write(ctx, t, key, n3, n1, n2, n3)

	// n2 stops, renewed, and its generation-1 certificate is put back.
	n2.node.Close()
	raw, err := os.ReadFile(filepath.Join(oldDir2, pki.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n2.dir, pki.CertFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.node.RotateCA(ctx, site.CAFinish); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if g := n1.node.CAGenerations(); g != (pki.Generations{Current: 2}) {
		t.Errorf("n1 follows %+v after finish, want generation 2 alone", g)
	}
	if err := heartbeat(t, n1.addr, old2, auth, pki.Generations{Current: 2}); err == nil {
		t.Error("n1 took an RPC from a generation-1 certificate after the rotation finished")
	}
	for name, conf := range rafttest.Attackers(t, pki.NewTrust(cluster.ClusterName, mustCA(t, auth, 2)), old2, raftnode.ProtoRaft) {
		if err := rafttest.Forge(n1.addr, conf, nil); err == nil {
			t.Errorf("%s: n1 took the forged entry", name)
		}
	}

	n2.open(t, key, false)
	if g := certGeneration(auth, n2); g != 2 {
		t.Fatalf("n2 restarted with a certificate of generation %d, want 2", g)
	}
	write(ctx, t, key, n2, n1, n2, n3)
	waitFor(t, "n2 to follow the finished rotation", func() bool { return n2.node.CAGenerations() == pki.Generations{Current: 2} })
}

// mustCA is the certificate of auth's CA of generation g.
func mustCA(t *testing.T, auth *pki.Authority, g uint64) *x509.Certificate {
	t.Helper()
	ca, err := auth.CA(g)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Certificate()
}
