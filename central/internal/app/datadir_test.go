package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/testdir"
)

// dataConfig is a central on loopback in a new directory; replicated, a
// one-node Raft cluster.
func dataConfig(t *testing.T, replicated bool) *config.Config {
	c := config.Default()
	c.DataDir, c.Addr = filepath.Join(t.TempDir(), "c1"), centraltest.FreeAddr(t)
	if replicated {
		c.RaftAddr, c.NodeID = centraltest.FreeAddr(t), "c1"
	}
	return c
}

// runSites runs central on cfg, creates sites s<from>..s<to-1> through
// its API, and stops it.
func runSites(t *testing.T, cfg *config.Config, from, to int) {
	t.Helper()
	r := start(t, cfg, &centraltest.Buffer{})
	defer r.stop()
	r.waitOut(t, regexp.MustCompile(`admin token`))
	token, err := os.ReadFile(cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	createSites(t, r.url, strings.TrimSpace(string(token)), from, to)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
}

// createSites creates sites s<from>..s<to-1> through the API at url. A
// Raft node answers 503, having applied nothing, until a leader is
// elected: those requests are sent again.
func createSites(t *testing.T, url, token string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		var code int
		var msg string
		answered := poll(func() bool {
			req, _ := http.NewRequest("POST", url+"/v1/sites", strings.NewReader(fmt.Sprintf(`{"id":"s%d"}`, i)))
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			raw, _ := io.ReadAll(res.Body)
			code, msg = res.StatusCode, string(raw)
			return code != http.StatusServiceUnavailable
		})
		if !answered || code != http.StatusCreated {
			t.Fatalf("create site s%d: %d %s", i, code, msg)
		}
	}
}

// TestRefusesDataDir starts central, one node or a Raft node, on data
// directories that lost or damaged a file, or whose store is past its
// Raft log: each start is refused with an error that names the file and
// says how to recover, and nothing in the directory changes. Before, a
// truncated central.db was a SIGBUS, an empty one a new store with no
// sites and a new admin token, and a Raft node without its raft.db a new
// cluster.
func TestRefusesDataDir(t *testing.T) {
	for _, replicated := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "replicated"}[replicated], func(t *testing.T) {
			cfg := dataConfig(t, replicated)
			runSites(t, cfg, 0, 3)
			earlier := filepath.Join(t.TempDir(), "earlier")
			if err := os.CopyFS(earlier, os.DirFS(cfg.DataDir)); err != nil {
				t.Fatal(err)
			}
			runSites(t, cfg, 3, 6)
			damages := testdir.Damages("central.db", earlier)
			if !replicated {
				// Without Raft, a missing store is a new central.
				damages = map[string]testdir.Damage{"central.db emptied": damages["central.db emptied"],
					"central.db truncated": damages["central.db truncated"]}
			}
			for name, damage := range damages {
				t.Run(name, func(t *testing.T) {
					c, out := dataConfig(t, replicated), &centraltest.Buffer{}
					says := []string{"changed nothing in " + c.DataDir, "mv " + c.DataDir + " " + c.DataDir + ".refused"}
					if replicated {
						says = append(says, "-join ")
					}
					testdir.StartRefused(t, cfg.DataDir, c.DataDir, damage, out, "API at", func(ctx context.Context) error {
						return Run(ctx, c, slog.New(slog.NewTextHandler(t.Output(), nil)), out)
					}, says...)
				})
			}
		})
	}
}

// TestRestoreNodeFromPeers follows the recovery a refused central node
// prints, in a 3-node central whose bootstrap node lost its raft.db: move
// its data directory aside, remove it through another member's API,
// start it again joining that member with the admin token from the old
// directory. It comes back as a voter with every site.
func TestRestoreNodeFromPeers(t *testing.T) {
	logs := &centraltest.Buffer{}
	c1 := dataConfig(t, true)
	r1 := start(t, c1, logs)
	defer func() { r1.stop() }()
	token := r1.waitAdminToken(t, c1)
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	api := func(url, method, path string) (int, clusterView) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var st clusterView
		json.NewDecoder(res.Body).Decode(&st)
		return res.StatusCode, st
	}
	var peers []*running
	for _, id := range []string{"c2", "c3"} {
		c := dataConfig(t, true)
		c.NodeID, c.DataDir, c.Join, c.JoinTokenFile = id, filepath.Join(filepath.Dir(c.DataDir), id), r1.url, tokenFile
		r := start(t, c, logs)
		defer r.stop()
		peers = append(peers, r)
	}
	voters := func(url string, n int) bool {
		return poll(func() bool { _, st := api(url, "GET", "/v1/cluster"); return len(st.Voters) == n })
	}
	if !voters(r1.url, 3) {
		t.Fatal("the cluster did not form")
	}
	createSites(t, peers[0].url, token, 0, 5)

	if err := r1.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(c1.DataDir, "raft", "raft.db")); err != nil {
		t.Fatal(err)
	}
	out := &centraltest.Buffer{}
	err := testdir.Refused(t, waitTimeout, out, "API at", func(ctx context.Context) error {
		return Run(ctx, c1, logs.Logger(), out)
	})
	if !strings.Contains(err.Error(), "/v1/cluster/members/c1") {
		t.Fatalf("the refusal does not say how to recover: %v", err)
	}

	// The recovery, as printed.
	refused := c1.DataDir + ".refused"
	if err := os.Rename(c1.DataDir, refused); err != nil {
		t.Fatal(err)
	}
	if !poll(func() bool {
		code, _ := api(peers[0].url, "DELETE", "/v1/cluster/members/c1")
		return code == http.StatusNoContent
	}) {
		t.Fatal("c1 was not removed")
	}
	c1.Join, c1.JoinTokenFile = peers[0].url, filepath.Join(refused, "admin.token")
	r1 = start(t, c1, logs)
	if !voters(r1.url, 3) {
		t.Fatal("c1 is not a voter again")
	}
	createSites(t, r1.url, token, 5, 6)
	// The leader applied the last site before it answered: the highest
	// applied index of the three covers it.
	var last uint64
	for _, r := range append(peers, r1) {
		_, st := api(r.url, "GET", "/v1/cluster")
		last = max(last, st.AppliedIndex)
	}
	if !poll(func() bool { _, st := api(r1.url, "GET", "/v1/cluster"); return st.AppliedIndex >= last }) {
		t.Fatal("c1 did not catch up")
	}
	if err := r1.stop(); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(c1.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if sites, err := db.Sites(); err != nil || len(sites) != 6 {
		t.Errorf("c1's store has %d sites (%v), want 6", len(sites), err)
	}
}

// clusterView is a node's GET /v1/cluster.
type clusterView struct {
	Voters       []string `json:"voters"`
	AppliedIndex uint64   `json:"applied_index"`
}
