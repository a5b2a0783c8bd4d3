package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/testwait"
)

// heldIdentity copies tn's key and certificate aside and loads them.
func heldIdentity(t *testing.T, tn *testNode) *pki.Identity {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{pki.KeyFile, pki.CertFile} {
		raw, err := os.ReadFile(filepath.Join(tn.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ident, err := pki.LoadIdentity(dir, tn.id)
	if err != nil {
		t.Fatal(err)
	}
	return ident
}

// heartbeat sends an RPC of term 0 (which changes nothing) to addr with
// ident's certificate.
func heartbeat(t *testing.T, addr string, ident *pki.Identity, trust *pki.Trust) error {
	t.Helper()
	c, err := rafttest.Dial(addr, pki.ClientConfig(ident, trust, nil, raftnode.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Heartbeat(0)
	return err
}

// waitRenewed waits until db's records of ids report generation gen.
func waitRenewed(t *testing.T, db *store.DB, gen uint64, ids ...string) {
	t.Helper()
	for _, id := range ids {
		testwait.For(t, fmt.Sprintf("%s's record to name generation %d", id, gen), 30*time.Second, func() bool {
			m, err := db.Member(id)
			return err == nil && m.Generation() == gen
		})
	}
}

// A three-node central rotates its CA: with c3 stopped, begin renews c1
// and c2 (the leader records what their certificates are) and finish is
// refused naming c3; c3, started again, is admitted with its old
// certificate, renews, and finish trusts generation 2 alone: a
// generation-1 certificate of a member's own key is then refused.
func TestRotateCA(t *testing.T) {
	nodes := cluster(t, 3)
	c3 := nodes[2]
	leader := waitLeader(t, nodes)
	auth, err := CentralCA(leader.db)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := auth.CA(1)
	ca2, _ := auth.CA(2)
	var other *testNode
	for _, tn := range nodes[:2] {
		if tn != leader {
			other = tn
		}
	}
	old := heldIdentity(t, other)
	if err := heartbeat(t, leader.addr, old, pki.NewTrust(ClusterName, ca1.Certificate(), ca2.Certificate())); err != nil {
		t.Fatalf("%s's certificate before the rotation: %v; the attack below tests nothing", other.id, err)
	}

	// c3 holds every member's record before it stops: a node restarted
	// before it caught up with its join admits none of them.
	waitConverged(t, leader, nodes)
	c3.stop()
	c, err := rotate(t, nodes, store.CABegin)
	if err != nil || c.Generation != 2 || c.Previous != 1 {
		t.Fatalf("begin: %+v, %v", c, err)
	}
	leader = waitLeader(t, nodes)
	waitRenewed(t, leader.db, 2, "c1", "c2")
	if st := leader.node.Status(); !st.CA.Rotating || len(st.CA.CAs) != 2 || strings.Join(st.CA.NotRenewed, ",") != "c3" {
		t.Errorf("the status's CA during the rotation: %+v", st.CA)
	}
	_, err = rotate(t, nodes, store.CAFinish)
	if e, ok := errs.AsError(err); !ok || e.Code != errs.CodeConflict || !strings.Contains(e.Message, "c3 (generation 1)") {
		t.Fatalf("finish with c3 stopped: %v, want a conflict naming c3", err)
	}

	c3.start(t, false)
	waitRenewed(t, leader.db, 2, "c3")
	createSite(t, nodes)
	waitConverged(t, waitLeader(t, nodes), nodes)
	if _, err := rotate(t, nodes, store.CAFinish); err != nil {
		t.Fatalf("finish: %v", err)
	}
	leader = waitLeader(t, nodes)
	if g := leader.node.CAGenerations(); g != (pki.Generations{Current: 2}) {
		t.Errorf("the leader follows %+v after finish", g)
	}
	if err := heartbeat(t, leader.addr, old, pki.NewTrust(ClusterName, ca2.Certificate())); err == nil {
		t.Error("the leader took an RPC from a generation-1 certificate after the rotation finished")
	}
}

// rotate takes a step of the rotation on the leader, again on the next
// one while leadership moves: a step that was applied although its
// answer was lost is then refused as out of turn, and answered with the
// state it left.
func rotate(t *testing.T, nodes []*testNode, step string) (store.CA, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var lost bool
	for {
		leader := waitLeader(t, nodes)
		c, err := leader.node.RotateCA(step, "alice")
		switch {
		case errors.Is(err, ErrNotLeader) && time.Now().Before(deadline):
			continue
		case errors.Is(err, store.ErrNotApplied) && time.Now().Before(deadline):
			lost = true
			continue
		case lost && err != nil && (strings.Contains(err.Error(), "under way") || strings.Contains(err.Error(), "no rotation")):
			return leader.db.CA()
		}
		return c, err
	}
}
