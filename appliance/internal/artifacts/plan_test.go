package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/testwait"
)

// fakeSite is a site of one store, proposals applied at once (no Raft),
// whose leadership the test sets; it keeps the reports it was sent.
type fakeSite struct {
	*site.Proposer
	leader atomic.Bool

	mu      sync.Mutex
	reports []site.ArtifactReport
}

func (f *fakeSite) IsLeader() bool { return f.leader.Load() }

func (f *fakeSite) ReportArtifact(ctx context.Context, r site.ArtifactReport) error {
	f.mu.Lock()
	f.reports = append(f.reports, r)
	f.mu.Unlock()
	return f.Proposer.ReportArtifact(ctx, r)
}

// fixture is node n2's replicator over a store where n1, n2 and n3 are
// members, with a clock the test moves.
type fixture struct {
	db    *store.DB
	site  *fakeSite
	node  *Node
	store *artifact.Store
	dir   string // the artifact directory
	cred  string // the credential file
	now   time.Time
}

var t0 = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), now: t0}
	var err error
	if f.db, err = store.Open(filepath.Join(t.TempDir(), "store.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	if f.store, err = artifact.Open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	f.site = &fakeSite{Proposer: site.NewProposer(site.ProposerConfig{Log: site.NewLocalLog(f.db, nil), Store: f.db,
		Now: func() time.Time { return f.now }})}
	for i, id := range []string{"n1", "n2", "n3"} {
		if err := f.site.PutMember(t.Context(), &store.Member{ID: id, RaftAddr: "10.0.0." + string(rune('1'+i)) + ":7081", APIAddr: "https://api"}); err != nil {
			t.Fatal(err)
		}
	}
	f.cred = filepath.Join(t.TempDir(), "credential")
	os.WriteFile(f.cred, []byte("secret-1\n"), 0o600)
	peers := &http.Client{}
	f.node, err = New(Config{ID: "n2", Store: f.store, DB: f.db, Site: f.site, Peers: peers, ArtifactDir: f.dir, Grace: time.Hour,
		Central: Central{Bases: []string{"https://c1.example", "https://c2.example:8443"}, Site: "ams2", CredentialFile: f.cred, Client: &http.Client{}},
		Now:     func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// images stores images through the proposer.
func (f *fixture) images(t *testing.T, imgs ...*store.Image) {
	t.Helper()
	for _, img := range imgs {
		if _, err := f.site.PutImage(t.Context(), img, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) plan(t *testing.T) artifact.Plan {
	t.Helper()
	p, err := f.node.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sources names each wanted digest's sources, with their URL, header
// and WAN flag.
func sources(p artifact.Plan) map[string][]string {
	out := map[string][]string{}
	for _, w := range p.Want {
		var s []string
		for _, src := range w.Sources {
			line := src.Name + " " + src.URL
			if h := src.Header.Get("Authorization"); h != "" {
				line += " [" + h + "]"
			}
			if src.WAN {
				line += " WAN"
			}
			s = append(s, line)
		}
		out[string(w.Digest)[:4]] = s
	}
	return out
}

var (
	shaA = strings.Repeat("aa", 32)
	shaB = strings.Repeat("bb", 32)
	shaC = strings.Repeat("cc", 32)
)

// TestPlanSources: a follower copies from the peers that hold an
// artifact (and from its artifact directory, for an image that is a
// file there); the leader may also pull from each central node, with the
// site's credential as it reads now, and from the image's upstream URL.
func TestPlanSources(t *testing.T) {
	f := newFixture(t)
	f.images(t,
		&store.Image{Name: "a", Type: store.ImageOS, SHA256: shaA, Size: 10, Format: "raw"},
		&store.Image{Name: "b", Type: store.ImageOS, File: "b.raw", SHA256: shaB, Format: "raw"},
		&store.Image{Name: "c", Type: store.ImageOS, URL: "https://mirror.example/c.raw?token=x", SHA256: shaC, Format: "raw"})
	for _, n := range []string{"n1", "n3"} {
		if err := f.site.RecordArtifact(t.Context(), n, shaA, 10); err != nil {
			t.Fatal(err)
		}
	}
	follower := map[string][]string{
		"aaaa": {"peer n3 https://10.0.0.3:7081/v1/internal/artifacts/" + shaA, "peer n1 https://10.0.0.1:7081/v1/internal/artifacts/" + shaA},
		"bbbb": {"artifact_dir file:///b.raw"},
		"cccc": nil,
	}
	if diff := cmp.Diff(follower, sources(f.plan(t))); diff != "" {
		t.Errorf("a follower's sources (-want +got):\n%s", diff)
	}
	f.site.leader.Store(true)
	os.WriteFile(f.cred, []byte("secret-2\n"), 0o600)
	central := func(sha string) []string {
		return []string{
			"central c1.example https://c1.example/v1/sites/ams2/artifacts/" + sha + " [Bearer secret-2] WAN",
			"central c2.example:8443 https://c2.example:8443/v1/sites/ams2/artifacts/" + sha + " [Bearer secret-2] WAN",
		}
	}
	leader := map[string][]string{
		"aaaa": append(follower["aaaa"], central(shaA)...),
		"bbbb": append(follower["bbbb"], central(shaB)...),
		"cccc": append(central(shaC), "upstream mirror.example https://mirror.example/c.raw?token=x WAN"),
	}
	if diff := cmp.Diff(leader, sources(f.plan(t))); diff != "" {
		t.Errorf("the leader's sources (-want +got):\n%s", diff)
	}
	os.Remove(f.cred)
	if got := sources(f.plan(t))["cccc"]; len(got) != 1 || !strings.HasPrefix(got[0], "upstream") {
		t.Errorf("without a credential the leader pulls from %v, want the upstream URL alone", got)
	}
}

// TestPlanWaitsForAnotherNodesPull: a leader does not pull from central
// what another node (the leader before it, whose transfer goes on)
// reported pulling lately; it does once that pull failed, or fell silent
// for pullStale.
func TestPlanWaitsForAnotherNodesPull(t *testing.T) {
	f := newFixture(t)
	f.images(t, &store.Image{Name: "a", Type: store.ImageOS, SHA256: shaA, Size: 10, Format: "raw"})
	f.site.leader.Store(true)
	report := func(kind, msg string) {
		t.Helper()
		r := site.ArtifactReport{Node: "n1", SHA256: shaA, Kind: kind, Source: "central", Held: 4, Size: 10, Message: msg}
		if err := f.site.ReportArtifact(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	pullsFromCentral := func() bool {
		got := sources(f.plan(t))["aaaa"]
		return len(got) > 0 && strings.HasPrefix(got[0], "central")
	}
	report(site.ArtifactPulling, "")
	if pullsFromCentral() {
		t.Error("the leader pulls from central what n1 is pulling")
	}
	f.now = f.now.Add(pullStale)
	if !pullsFromCentral() {
		t.Errorf("the leader does not pull from central what n1 has not reported pulling for %v", pullStale)
	}
	report(site.ArtifactPulling, "")
	report(site.ArtifactFailed, "connection reset")
	if !pullsFromCentral() {
		t.Error("the leader does not pull from central what n1 failed to pull")
	}
}

// put stores data in the node's store and returns its digest.
func (f *fixture) put(t *testing.T, data []byte) string {
	t.Helper()
	info, err := f.store.Put(t.Context(), bytes.NewReader(data), "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return string(info.Digest)
}

// TestPlanGarbage: what no image points at is garbage once the grace
// period is over, and not before; so is what no record names, by the
// age of its file; a node does not collect what it neither holds nor is
// recorded as holding.
func TestPlanGarbage(t *testing.T) {
	f := newFixture(t)
	base := time.Now() // the orphan's file is as old as the test
	f.now = base
	held := f.put(t, []byte("an old image"))
	orphan := f.put(t, []byte("left by an earlier life"))
	f.images(t,
		&store.Image{Name: "old", Type: store.ImageOS, SHA256: held, Format: "raw"},
		&store.Image{Name: "gone", Type: store.ImageOS, SHA256: shaC, Format: "raw"})
	if err := f.site.RecordArtifact(t.Context(), "n2", held, 12); err != nil {
		t.Fatal(err)
	}
	if err := f.site.RecordArtifact(t.Context(), "n1", shaC, 12); err != nil {
		t.Fatal(err)
	}
	f.now = base.Add(time.Minute)
	for _, name := range []string{"old", "gone"} {
		if err := f.site.Delete(t.Context(), site.Images, name, 0); err != nil {
			t.Fatal(err)
		}
	}
	f.now = base.Add(30 * time.Minute)
	if p := f.plan(t); len(p.Garbage) != 0 || len(p.Want) != 0 {
		t.Errorf("within the grace period: %+v, want nothing", p)
	}
	f.now = base.Add(2 * time.Hour)
	if got := f.plan(t).Garbage; !cmp.Equal(got, []artifact.Digest{artifact.Digest(held), artifact.Digest(orphan)}) {
		t.Errorf("garbage %v, want the unreferenced artifact and the orphan (not %s, which n2 never held)", got, shaC[:4])
	}
}

// TestReplicateAndReport: the replicator fetches what its plan wants,
// records it, and, for a pull from past the site, reports its progress
// at most at each tenth; a corrupt transfer is reported too, and what
// it held never published.
func TestReplicateAndReport(t *testing.T) {
	f := newFixture(t)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16) // 4 MiB: progress about once a MiB
	sum := sha256.Sum256(data)
	d := hex.EncodeToString(sum[:])
	var corruptOnce atomic.Bool
	corruptOnce.Store(true)
	central := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret-1" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		body := data
		if corruptOnce.Swap(false) {
			body = bytes.Clone(data)
			body[7] ^= 1
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	defer central.Close()
	f.node.cfg.Central.Bases = []string{central.URL}
	f.node.cfg.Retry.Base, f.node.cfg.Retry.Max = time.Millisecond, time.Millisecond
	f.site.leader.Store(true)
	f.images(t, &store.Image{Name: "big", Type: store.ImageOS, SHA256: d, Size: uint64(len(data)), Format: "raw"})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.node.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testwait.For(t, "the artifact recorded as n2's", time.Minute, func() bool {
		var rec *store.Artifact
		f.db.View(func(tx *store.Tx) error { rec, _ = store.Get[store.Artifact](tx, d); return nil })
		return rec != nil && rec.HeldBy("n2")
	})
	if _, ok := f.store.Stat(artifact.Digest(d)); !ok || f.store.Partial(artifact.Digest(d)) != 0 {
		t.Error("the store does not hold the artifact whole")
	}
	testwait.For(t, "the corrupt report", time.Minute, func() bool {
		f.site.mu.Lock()
		defer f.site.mu.Unlock()
		for _, r := range f.site.reports {
			if r.Kind == site.ArtifactCorrupt {
				return true
			}
		}
		return false
	})
	f.site.mu.Lock()
	defer f.site.mu.Unlock()
	var percents []int64
	for _, r := range f.site.reports {
		if r.Kind == site.ArtifactPulling {
			percents = append(percents, r.Held*100/r.Size)
		}
		if strings.Contains(r.Message+r.Source, "secret") {
			t.Errorf("a report carries the credential: %+v", r)
		}
	}
	// Two transfers of 4 MiB, progress about once a MiB: a few reports
	// each, never two in one tenth of a transfer, none at 100 (that is
	// the arrival, not a report).
	transfers := 1
	for i, p := range percents {
		switch {
		case p >= 100:
			t.Errorf("progress reported at %v %%: a report at 100", percents)
		case i > 0 && p < percents[i-1]:
			transfers++
		case i > 0 && p/10 == percents[i-1]/10:
			t.Errorf("progress reported at %v %%: twice in one tenth", percents)
		}
	}
	if transfers != 2 || len(percents) < 4 {
		t.Errorf("progress reported at %v %%, want a few reports for each of two transfers", percents)
	}
}

// TestInternalHandler: a node serves to its peers only what it holds,
// and says what it holds.
func TestInternalHandler(t *testing.T) {
	f := newFixture(t)
	d := f.put(t, []byte("held here"))
	srv := httptest.NewServer(f.node.Handler())
	defer srv.Close()
	get := func(path string) (int, []byte) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return res.StatusCode, b.Bytes()
	}
	if code, body := get(InternalPath + "/" + d); code != 200 || string(body) != "held here" {
		t.Errorf("held: %d %q", code, body)
	}
	if code, body := get(InternalPath + "/" + shaA); code != 404 || !strings.Contains(string(body), "not held by node n2") {
		t.Errorf("not held: %d %q", code, body)
	}
	code, body := get(InternalPath)
	var st NodeStatus
	if code != 200 || json.Unmarshal(body, &st) != nil || st.Node != "n2" || st.Artifacts != 1 || st.HeldBytes != 9 {
		t.Errorf("status: %d %s", code, body)
	}
}
