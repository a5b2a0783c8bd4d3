package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/seal"
)

// rotNode is an in-process node of TestRotateKey, reopenable on its
// directory.
type rotNode struct {
	id, dir, addr string
	db            *store.DB
	node          *cluster.Node
}

func (r *rotNode) open(t *testing.T, key *seal.Key, bootstrap bool) {
	t.Helper()
	if r.db == nil {
		db, err := store.Open(filepath.Join(r.dir, "store.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		r.db = db
	}
	cfg := cluster.Config{ID: r.id, Dir: r.dir, BindAddr: r.addr, APIURL: "http://127.0.0.1:1", Bootstrap: bootstrap,
		Log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", r.id)}
	r.node = apptest.OpenNode(t, key, cfg, r.db)
}

// record is id's member record in db.
func record(db *store.DB, id string) *store.Member {
	var m *store.Member
	db.View(func(tx *store.Tx) error { m, _ = store.Get[store.Member](tx, id); return nil })
	return m
}

// twoNodes starts n1, which leads, and n2, joined to it.
func twoNodes(ctx context.Context, t *testing.T, key *seal.Key) (n1, n2 *rotNode) {
	n1 = &rotNode{id: "n1", dir: t.TempDir(), addr: apptest.FreeAddr(t)}
	n2 = &rotNode{id: "n2", dir: t.TempDir(), addr: apptest.FreeAddr(t)}
	n1.open(t, key, true)
	waitFor(t, "n1 to lead", n1.node.IsReadyLeader)
	n2.open(t, key, false)
	apptest.JoinNode(ctx, t, key, n2.node, n1.node)
	return n1, n2
}

// A member rotates its key: its record pins the new key, it still
// replicates and forwards, and its old key is refused.
func TestRotateKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := twoNodes(ctx, t, key)

	// Keep n2's old key to attack with later.
	oldDir := t.TempDir()
	for _, f := range []string{pki.KeyFile, pki.CertFile} {
		raw, err := os.ReadFile(filepath.Join(n2.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(oldDir, f), raw, 0o600)
	}
	old, err := pki.LoadIdentity(oldDir, "n2")
	if err != nil {
		t.Fatal(err)
	}

	if err := n2.node.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	fp := n2.node.Identity().Fingerprint()
	if fp == old.Fingerprint() {
		t.Fatal("RotateKey kept the key")
	}
	waitFor(t, "n1 to pin n2's new key alone", func() bool {
		m := record(n1.db, "n2")
		return m != nil && m.Fingerprint == fp && m.NextFingerprint == ""
	})
	// n2 still forwards (with its new certificate) and replicates.
	s2 := cluster.NewSite(n2.node, site.ProposerConfig{Key: key})
	idx, err := s2.RecordEvent(ctx, store.Event{Kind: "note", Message: "after the rotation"})
	if err != nil {
		t.Fatalf("a write through n2 after the rotation: %v", err)
	}
	if err := n2.node.WaitApplied(ctx, idx); err != nil {
		t.Fatal(err)
	}
	auth, _ := cluster.SiteCA(key)
	ca, _ := auth.CA(pki.Generation)
	c, err := rafttest.Dial(n1.addr, pki.ClientConfig(old, pki.NewTrust(cluster.ClusterName, ca.Certificate()), nil, raftnode.ProtoRaft))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Heartbeat(0); err == nil {
		t.Error("n1 took an RPC from n2's old key")
	}
}

// A rotation cut short after the record named the new key is finished
// when the node starts again.
func TestRotationCutShort(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := twoNodes(ctx, t, key)
	s2 := cluster.NewSite(n2.node, site.ProposerConfig{Key: key})
	next, err := n2.node.Identity().StageKey()
	if err != nil {
		t.Fatal(err)
	}
	m := *record(n2.db, "n2")
	m.NextFingerprint = next
	if err := s2.PutMember(ctx, &m); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n2's store to name the staged key", func() bool { return record(n2.db, "n2").NextFingerprint == next })
	n2.node.Close()
	n2.open(t, key, false)
	if got := n2.node.Identity().Fingerprint(); got != next {
		t.Fatalf("n2's key after the restart: %s, want the staged %s", got, next)
	}
	if err := n2.node.RegisterSelf(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "n1 to pin n2's staged key alone", func() bool {
		m := record(n1.db, "n2")
		return m != nil && m.Fingerprint == next && m.NextFingerprint == ""
	})
}
