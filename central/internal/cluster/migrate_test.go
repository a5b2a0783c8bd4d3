package cluster

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/internal/raftnode/rafttest"
	"github.com/outposthq/outpost/internal/testdir"
)

// TestDataDirOfPreviousRelease starts a node on a data directory written
// by release b482c18 (testdata/datadir-b482c18: how it was made is in
// make_fixture_test.go.txt). Its store was copied at a mid index, so the
// node replays the rest of that release's log and must come to exactly
// the state that release recorded in state.json.
func TestDataDirOfPreviousRelease(t *testing.T) {
	dir := t.TempDir()
	testdir.Untar(t, "testdata/datadir-b482c18/datadir.tar.gz", dir)
	var want map[string]any
	testdir.ReadJSON(t, filepath.Join(dir, "state.json"), &want)

	db, err := store.Open(filepath.Join(dir, "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.AppliedIndex() >= uint64(want["applied_index"].(float64)) {
		t.Fatalf("the fixture's store is at %d: it must be behind its log", db.AppliedIndex())
	}
	// As the app does: the node makes its key pair at its first start on
	// the release's directory; its CA comes from the key it kept.
	ident, err := pki.LoadIdentity(dir, "c1")
	if err != nil {
		t.Fatal(err)
	}
	n, err := Open(Config{Config: raftnode.Config{ID: "c1", Dir: filepath.Join(dir, "raft"), BindAddr: centraltest.FreeAddr(t),
		Log: testLog(t)}, APIURL: "http://127.0.0.1:7443", Identity: ident}, db)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("the node did not lead its own cluster")
		}
		time.Sleep(10 * time.Millisecond)
	}
	got := dumpState(t, db)
	if got["applied_index"].(float64) < want["applied_index"].(float64) {
		t.Errorf("applied index %v, want at least %v", got["applied_index"], want["applied_index"])
	}
	delete(got, "applied_index")
	delete(want, "applied_index")
	// The node records its own addresses when it leads.
	delete(got, "members")
	delete(want, "members")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state after replaying the previous release's log (-want +got):\n%s", diff)
	}

	// The release recorded no keys: the node pins its own when it leads,
	// and its Raft port admits members only.
	centraltest.WaitFor(t, "c1 to record its key", func() bool {
		m, err := db.Member("c1")
		return err == nil && m.Fingerprint == ident.Fingerprint()
	})
	if err := rafttest.Forge(n.raft.Addr(), nil, nil); err == nil {
		t.Error("the upgraded node took a Raft RPC over plain TCP")
	}
}

// dumpState is central's state as JSON values, as the fixture's
// state.json records it.
func dumpState(t *testing.T, db *store.DB) map[string]any {
	t.Helper()
	state := map[string]any{"applied_index": db.AppliedIndex()}
	sites, err := db.Sites()
	if err != nil {
		t.Fatal(err)
	}
	state["sites"] = sites
	for _, s := range sites {
		var all []store.Item
		for _, kind := range []string{"machine", "image", "template", "order"} {
			items, err := db.ListDesired(s.ID, kind)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, items...)
		}
		state["desired/"+s.ID] = all
		revs, err := db.NextRevisions(s.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		state["revisions/"+s.ID] = revs
		evs, stored, err := db.Events(s.ID, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		state["events/"+s.ID] = evs
		state["stored/"+s.ID] = stored
	}
	members, err := db.Members()
	if err != nil {
		t.Fatal(err)
	}
	state["members"] = members
	return testdir.Normalize(t, state)
}
