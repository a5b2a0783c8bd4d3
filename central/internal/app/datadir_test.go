package app

import (
	"context"
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
	logs := &centraltest.Buffer{}
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	r := start(t, cfg, logs)
	defer r.stop()
	r.waitOut(t, regexp.MustCompile(`admin token`))
	token, err := os.ReadFile(cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, r.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	for i := from; i < to; i++ {
		// A restarted Raft node answers 503, having applied nothing,
		// until it leads again.
		var code int
		var msg string
		created := poll(func() bool {
			code, msg = do("POST", "/v1/sites", fmt.Sprintf(`{"id":"s%d"}`, i))
			return code != http.StatusServiceUnavailable
		})
		if !created || code != http.StatusCreated {
			t.Fatalf("create site s%d: %d %s", i, code, msg)
		}
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
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
