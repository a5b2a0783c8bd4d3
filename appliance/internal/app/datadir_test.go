package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/testdir"
)

// runNotes runs the appliance on cfg, records n notes through its API
// and stops it.
func runNotes(t *testing.T, cfg *config.Config, n int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &apptest.SyncBuffer{}
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- Run(ctx, cfg, log, out) }()
	waitOut(t, out, done, regexp.MustCompile(`admin token|authenticate with the admin token`))
	token, err := os.ReadFile(cfg.AdminTokenPath())
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(cfg.APIURL, strings.TrimSpace(string(token)))
	for range n {
		if err := c.Do(t.Context(), "POST", "/v1/events", store.Event{Kind: "note", Message: "a note"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestRefusesDataDir starts the appliance on data directories that lost
// or damaged a file, or whose store is past its Raft log: each start is
// refused with an error that names the file and says how to recover, and
// nothing in the directory changes (the admin token file included).
// Before, a missing or emptied raft.db, or an emptied store.db, started
// afresh.
func TestRefusesDataDir(t *testing.T) {
	cfg := testConfig(t)
	runNotes(t, cfg, 3)
	earlier := filepath.Join(t.TempDir(), "earlier")
	if err := os.CopyFS(earlier, os.DirFS(cfg.DataDir)); err != nil {
		t.Fatal(err)
	}
	runNotes(t, cfg, 3)

	for name, damage := range testdir.Damages("store.db", earlier) {
		t.Run(name, func(t *testing.T) {
			c, out := testConfig(t), &apptest.SyncBuffer{}
			testdir.StartRefused(t, cfg.DataDir, c.DataDir, damage, out, "API at", func(ctx context.Context) error {
				return Run(ctx, c, slog.New(slog.NewTextHandler(t.Output(), nil)), out)
			}, "changed nothing in "+c.DataDir, "mv "+c.DataDir+" "+c.DataDir+".refused", "-join ")
		})
	}
}
