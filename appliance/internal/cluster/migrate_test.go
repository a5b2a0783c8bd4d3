package cluster

import (
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/testdir"
)

// TestDataDirOfPreviousRelease starts a node on a data directory written
// by release b482c18 (testdata/datadir-b482c18: how it was made is in
// make_fixture_test.go.txt). Its store was copied at a mid index, so the
// node replays the rest of that release's log, Batch entries included,
// and must come to exactly the state that release recorded in
// state.json.
func TestDataDirOfPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	testdir.Untar(t, "testdata/datadir-b482c18/datadir.tar.gz", dir)
	var want map[string]any
	testdir.ReadJSON(t, filepath.Join(dir, "state.json"), &want)

	db, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.AppliedIndex() >= uint64(want["applied_index"].(float64)) {
		t.Fatalf("the fixture's store is at %d: it must be behind its log", db.AppliedIndex())
	}
	// As the app does: the node makes its key pair at its first start on
	// the release's directory, and has the CA of the site key it kept.
	ident, err := pki.LoadIdentity(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.Load(filepath.Join(dir, "site.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := SiteCA(key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Config{ID: "node1", Dir: filepath.Join(dir, "raft"), BindAddr: freeAddr(t),
		APIURL: "http://127.0.0.1:7080", Identity: ident, CA: ca, Log: slog.New(slog.DiscardHandler)}, db)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !n.IsReadyLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the node did not lead its own cluster")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := dumpState(t, db)
	if got["applied_index"].(float64) <= want["applied_index"].(float64) {
		t.Errorf("applied index %v, want past %v (the new leader's no-op)", got["applied_index"], want["applied_index"])
	}
	delete(got, "applied_index")
	delete(want, "applied_index")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state after replaying the previous release's log (-want +got):\n%s", diff)
	}

	// The release recorded no link to central: it reads as unknown.
	var link *store.Link
	if err := db.View(func(tx *store.Tx) (err error) { link, err = tx.Link(); return err }); err != nil || link != nil {
		t.Errorf("the previous release's link to central: %+v, %v; want none (unknown)", link, err)
	}

	// The release recorded no keys; the node pins its own, and its Raft
	// port now admits members only.
	if err := n.RegisterSelf(t.Context()); err != nil {
		t.Fatal(err)
	}
	var m *store.Member
	db.View(func(tx *store.Tx) error { m, err = store.Get[store.Member](tx, "node1"); return err })
	if m == nil || m.Fingerprint != ident.Fingerprint() {
		t.Errorf("node1's record after RegisterSelf: %+v, %v; want its key %s", m, err, ident.Fingerprint())
	}
	if err := rafttest.Forge(n.cfg.BindAddr, nil, nil); err == nil {
		t.Error("the upgraded node took a Raft RPC over plain TCP")
	}
}

// dumpState is every object of the store as JSON values, as the fixture's
// state.json records them.
func dumpState(t *testing.T, db *store.DB) map[string]any {
	t.Helper()
	state := map[string]any{"applied_index": db.AppliedIndex()}
	err := db.View(func(tx *store.Tx) error {
		var err error
		if state["machines"], err = store.List[store.Machine](tx); err != nil {
			return err
		}
		state["subnets"], _ = store.List[store.Subnet](tx)
		state["leases"], _ = store.List[store.Lease](tx)
		state["images"], _ = store.List[store.Image](tx)
		state["templates"], _ = store.List[store.Template](tx)
		state["workflows"], _ = store.List[store.Workflow](tx)
		state["jobs"], _ = store.List[store.Job](tx)
		state["orders"], _ = store.List[store.Order](tx)
		state["settings"], _ = store.List[store.Settings](tx)
		state["members"], _ = store.List[store.Member](tx)
		state["tokens"], _ = store.List[store.Token](tx)
		state["events"], _ = tx.EventsSince(0, 100000)
		state["sync"] = tx.SyncState()
		state["sync_managed"] = tx.SyncManaged()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return testdir.Normalize(t, state)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (Raft's transport needs a concrete port to advertise).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
