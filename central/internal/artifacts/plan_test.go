package artifacts

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
)

// fakeCluster is a member that leads or not; it reaches no one.
type fakeCluster struct {
	id     string
	leader bool
}

func (f *fakeCluster) ID() string               { return f.id }
func (f *fakeCluster) IsLeader() bool           { return f.leader }
func (f *fakeCluster) LeaderInternal() string   { return "" }
func (f *fakeCluster) HTTPClient() *http.Client { return &http.Client{} }
func (f *fakeCluster) OnLeadership(func(bool))  {}

func digestOf(b []byte) artifact.Digest {
	s := sha256.Sum256(b)
	return artifact.Digest(hex.EncodeToString(s[:]))
}

// catalogue is a store with members c1 to c3 (c4 is no member) and three
// artifacts: up, uploaded to c2 and copied by c4; reg, registered from a
// URL, held by none; mine, held by c1.
func catalogue(t *testing.T) (*store.DB, map[string]artifact.Digest) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for i, id := range []string{"c1", "c2", "c3"} {
		if err := db.PutMember(&store.Member{ID: id, RaftAddr: "127.0.0.1:" + string(rune('1'+i)), APIURL: "http://x"}); err != nil {
			t.Fatal(err)
		}
	}
	d := map[string]artifact.Digest{"up": digestOf([]byte("up")), "reg": digestOf([]byte("reg")), "mine": digestOf([]byte("mine"))}
	up := &store.Artifact{Digest: d["up"], Size: 2, Source: store.ArtifactSource{Upload: "alice"}}
	for _, rec := range []struct {
		node string
		a    *store.Artifact
	}{{"c2", up}, {"c4", up}, {"c1", &store.Artifact{Digest: d["mine"], Size: 4, Source: store.ArtifactSource{Upload: "alice"}}}} {
		if _, err := db.RecordArtifact(rec.node, rec.a, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RegisterArtifact("bob", &store.Artifact{Digest: d["reg"], Size: 3, Source: store.ArtifactSource{URL: "https://mirror/reg?sig=x"}}); err != nil {
		t.Fatal(err)
	}
	return db, d
}

// sources lists each wanted artifact's sources by name, and whether it
// is recorded here.
func sources(p artifact.Plan, names map[string]artifact.Digest) map[string][]string {
	out := map[string][]string{}
	for name, d := range names {
		for _, w := range p.Want {
			if w.Digest != d {
				continue
			}
			out[name] = []string{}
			if w.Recorded {
				out[name] = append(out[name], "recorded")
			}
			for _, s := range w.Sources {
				out[name] = append(out[name], s.Name)
			}
		}
	}
	return out
}

// TestPlan: every node wants the whole catalogue, from the members that
// hold each artifact (not itself, nor a holder that is no member), and
// the leader alone also from an upstream URL, after the peers.
func TestPlan(t *testing.T) {
	tests := map[string]struct {
		cluster Cluster
		want    map[string][]string
	}{
		"a follower": {cluster: &fakeCluster{id: "c3"}, want: map[string][]string{
			"up": {"peer c2"}, "reg": {}, "mine": {"peer c1"},
		}},
		"the leader": {cluster: &fakeCluster{id: "c1", leader: true}, want: map[string][]string{
			"up": {"peer c2"}, "reg": {"upstream https://mirror/reg?…"}, "mine": {"recorded"},
		}},
		"a single central": {want: map[string][]string{
			"up": {}, "reg": {"upstream https://mirror/reg?…"}, "mine": {},
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db, d := catalogue(t)
			n, err := New(Config{DB: db, Dir: t.TempDir(), Cluster: tc.cluster})
			if err != nil {
				t.Fatal(err)
			}
			p, err := n.plan(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, sources(p, d)); diff != "" {
				t.Errorf("sources (-want +got):\n%s", diff)
			}
			for _, w := range p.Want {
				for _, s := range w.Sources {
					if s.WAN != (s.Name[:4] == "upst") {
						t.Errorf("source %s: WAN %v", s.Name, s.WAN)
					}
				}
			}
		})
	}
}

// TestGarbage: what the node holds that the catalogue does not is
// garbage, but not an upload under way nor one just ended (for
// Config.Hold); a catalogued artifact never is.
func TestGarbage(t *testing.T) {
	db, d := catalogue(t)
	n, err := New(Config{DB: db, Dir: t.TempDir(), Hold: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	n.now = func() time.Time { return now }
	put := func(b []byte) artifact.Digest {
		i, err := n.store.Put(t.Context(), bytes.NewReader(b), "", -1)
		if err != nil {
			t.Fatal(err)
		}
		return i.Digest
	}
	put([]byte("mine"))
	stray, uploading := put([]byte("stray")), put([]byte("uploading"))
	n.keep(uploading)
	garbage := func() []artifact.Digest {
		p, err := n.plan(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return p.Garbage
	}
	if diff := cmp.Diff([]artifact.Digest{stray}, garbage()); diff != "" {
		t.Errorf("garbage while uploading (-want +got):\n%s", diff)
	}
	n.release(uploading)
	if got := garbage(); len(got) != 1 || got[0] != stray {
		t.Errorf("garbage just after the upload: %v, want the stray alone", got)
	}
	now = now.Add(time.Minute + time.Second) // Hold passes
	want := []artifact.Digest{stray, uploading}
	if stray > uploading {
		want = []artifact.Digest{uploading, stray}
	}
	if diff := cmp.Diff(want, garbage()); diff != "" {
		t.Errorf("garbage once the hold passed (-want +got):\n%s", diff)
	}
	if err := db.DeleteArtifact("bob", d["mine"]); err != nil {
		t.Fatal(err)
	}
	if got := garbage(); len(got) != 3 {
		t.Errorf("garbage after mine was deleted: %v, want it too", got)
	}
}
