package app

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/store"
)

// olderMember is a member of central's cluster that stands for a node
// of release 75c47a5: its own store and Raft node, admitted and joined
// as centrald joins, whose peer handler answers 404 at
// cluster.CommandsPath, as that release's does, until it is upgraded.
type olderMember struct {
	db       *store.DB
	upgraded atomic.Bool
}

// startOlderMember joins cfg's node (cfg.Join set) to the cluster as an
// olderMember.
func startOlderMember(t *testing.T, cfg *config.Config, log *slog.Logger) *olderMember {
	t.Helper()
	ctx := t.Context()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	apiURL := "http://" + cfg.Addr // nothing listens: a member's API is not called here
	joiner, err := newJoinClient(cfg, apiURL)
	if err != nil {
		t.Fatal(err)
	}
	if err := joiner.admit(ctx, cfg, log); err != nil {
		t.Fatal(err)
	}
	om := &olderMember{}
	if om.db, err = store.Open(cfg.StorePath()); err != nil {
		t.Fatal(err)
	}
	peer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if om.upgraded.Load() && r.URL.Path == cluster.CommandsPath {
			cluster.CommandsHandler().ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	node, err := openCluster(ctx, cfg, om.db, joiner, nil, peer, apiURL, log)
	if err != nil {
		om.db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(); om.db.Close() })
	m := &store.Member{ID: cfg.NodeID, RaftAddr: advertisedRaft(cfg), APIURL: apiURL, Fingerprint: node.Identity().Fingerprint()}
	if err := joiner.join(ctx, m, log); err != nil {
		t.Fatal(err)
	}
	return om
}

// errorAnswer is an API's error body.
type errorAnswer struct {
	Error struct{ Code, Message string }
}

// A 3-node central in the middle of a rolling upgrade, c2 standing for
// a node of the previous release (it does not answer which command
// types it applies: 404): an annotation posted to the leader, or sent
// on to it by c3, is refused with 503 naming c2 and its release's
// highest type, and no node stores it. Once c2 answers (upgraded), an
// annotation is recorded (201) and every node stores it, and only it.
func TestAnnotationRefusedWhileAMemberIsOlder(t *testing.T) {
	logs := &centraltest.Buffer{}
	c1 := nodeConfig(t, "c1")
	r1 := start(t, c1, logs)
	defer r1.stop()
	token := r1.waitAdminToken(t, c1)
	tokenFile := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2, c3 := nodeConfig(t, "c2"), nodeConfig(t, "c3")
	c2.Join, c2.JoinTokenFile, c3.Join, c3.JoinTokenFile = r1.url, tokenFile, r1.url, tokenFile
	old := startOlderMember(t, c2, logs.Logger().With("node", "c2"))
	r3 := start(t, c3, logs)
	defer r3.stop()
	var st struct {
		State, Leader string
		Voters        []string
		AppliedIndex  uint64 `json:"applied_index"`
		CommitIndex   uint64 `json:"commit_index"`
	}
	if !poll(func() bool {
		apiCall(t, http.DefaultClient, "GET", r3.url+"/v1/cluster", token, "", &st)
		return len(st.Voters) == 3 && st.Leader == "c1"
	}) {
		t.Fatalf("c3 sees voters %v, leader %q; want 3 and c1", st.Voters, st.Leader)
	}

	const body = `{"kind":"upgrade","start":"2026-12-08T01:00:00Z","text":"rolling upgrade"}`
	for _, url := range []string{r1.url, r3.url} {
		var e errorAnswer
		code := apiCall(t, http.DefaultClient, "POST", url+"/v1/annotations", token, body, &e)
		if code != http.StatusServiceUnavailable || !strings.Contains(e.Error.Message, "central is mid-upgrade: node c2 does not apply annotations yet") ||
			!strings.Contains(e.Error.Message, "up to 28") {
			t.Fatalf("POST /v1/annotations through %s with c2 old: %d %+v; want 503 naming c2 and type 28", url, code, e.Error)
		}
	}
	var list struct{ Annotations []store.Annotation }
	if code := apiCall(t, http.DefaultClient, "GET", r1.url+"/v1/annotations", token, "", &list); code != 200 || len(list.Annotations) != 0 {
		t.Fatalf("after the refusals: %d, annotations %+v; want none", code, list.Annotations)
	}

	old.upgraded.Store(true)
	var added store.Annotation
	if code := apiCall(t, http.DefaultClient, "POST", r3.url+"/v1/annotations", token, body, &added); code != http.StatusCreated {
		t.Fatalf("POST /v1/annotations once c2 answers: %d, want 201", code)
	}
	apiCall(t, http.DefaultClient, "GET", r1.url+"/v1/cluster", token, "", &st)
	commit := st.CommitIndex
	if !poll(func() bool {
		apiCall(t, http.DefaultClient, "GET", r3.url+"/v1/cluster", token, "", &st)
		return st.AppliedIndex >= commit && old.db.AppliedIndex() >= commit
	}) {
		t.Fatalf("c3 applied %d, c2 %d, of %d", st.AppliedIndex, old.db.AppliedIndex(), commit)
	}
	if code := apiCall(t, http.DefaultClient, "GET", r1.url+"/v1/annotations", token, "", &list); code != 200 {
		t.Fatalf("GET /v1/annotations: %d", code)
	}
	wantOnly(t, "c1", list.Annotations, added)
	got, err := old.db.Annotations(store.AnnotationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	wantOnly(t, "c2", got, added)
	if err := r3.stop(); err != nil {
		t.Fatal(err)
	}
	db3, err := store.Open(c3.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	got, err = db3.Annotations(store.AnnotationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	wantOnly(t, "c3", got, added)
}

// wantOnly fails unless node's annotations are want alone.
func wantOnly(t *testing.T, node string, got []store.Annotation, want store.Annotation) {
	t.Helper()
	if len(got) != 1 || got[0].ID != want.ID || got[0].Kind != want.Kind || !got[0].Created.Equal(want.Created) {
		t.Errorf("%s holds annotations %+v; want %+v alone", node, got, want)
	}
}
