package app

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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

// TestAdminTokenNotOverwritten starts a bootstrap node whose store and
// Raft log are new but whose data directory holds an admin token file (it
// lost its store): the node stops with an error naming the file rather
// than write a new token over it.
func TestAdminTokenNotOverwritten(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.AdminTokenPath(), []byte("an earlier token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(t.Output(), nil)), &apptest.SyncBuffer{}) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for {
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), cfg.AdminTokenPath()) {
				t.Errorf("Run = %v, want an error naming %s", err, cfg.AdminTokenPath())
			}
			return
		case <-tick.C:
			if raw, _ := os.ReadFile(cfg.AdminTokenPath()); string(raw) != "an earlier token\n" {
				cancel()
				<-done
				t.Fatalf("the admin token file was overwritten: it holds %q", raw)
			}
		case <-deadline:
			t.Fatal("Run neither stopped nor wrote the token file")
		}
	}
}
