package app

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// waitTimeout bounds every wait in these tests: generous, since a loaded
// CI machine is slow; waits end as soon as their condition holds.
const waitTimeout = 2 * time.Minute

// testConfig is a single-node appliance on loopback, without boot
// network, in a temporary directory.
func testConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "node1")
	cfg.APIAddr, cfg.RaftAddr = apptest.FreeAddr(t), apptest.FreeAddr(t)
	cfg.APIURL, cfg.RaftAdvertise = "http://"+cfg.APIAddr, cfg.RaftAddr
	cfg.ArtifactDir = t.TempDir()
	return cfg
}

// holdWriter passes lines on to w, except that the write of a line that
// contains hold waits until release is closed: it holds Run at that log
// line.
type holdWriter struct {
	w       io.Writer
	hold    string
	release chan struct{}
}

func (h *holdWriter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), h.hold) {
		<-h.release
	}
	return h.w.Write(p)
}

// waitOut polls out until re matches it, and returns the submatches.
func waitOut(t *testing.T, out *apptest.SyncBuffer, done <-chan error, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before printing %q; it printed:\n%s", err, re, out)
		case <-deadline:
			t.Fatalf("the appliance did not print %q; it printed:\n%s", re, out)
		case <-tick.C:
		}
	}
}

// An open event stream ends when the appliance stops: its response ends
// cleanly before the API server's Shutdown returns, rather than holding
// Shutdown until its grace period runs out. Run is held at its last log
// line ("stopping", written once every subsystem has stopped) until the
// client has read the end of the stream, so a stream that outlives
// Shutdown fails the test instead of passing late.
func TestShutdownEndsEventStreams(t *testing.T) {
	cfg := testConfig(t)
	logs := &apptest.SyncBuffer{}
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseRun := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseRun()
	hw := &holdWriter{w: io.MultiWriter(logs, t.Output()), hold: "msg=stopping ", release: release}
	log := slog.New(slog.NewTextHandler(hw, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &apptest.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, log, out) }()
	token := waitOut(t, out, done, regexp.MustCompile(`admin token \(shown once; also saved to .*\):\n  (\S+)\n`))[1]
	c := client.New(cfg.APIURL, token)

	// The stream is open and live: it delivers a note recorded after it
	// started.
	got := make(chan store.Event, 1)
	streamEnd := make(chan error, 1)
	go func() {
		streamEnd <- c.Stream(t.Context(), 0, func(e store.Event) error {
			if e.Kind == "note" {
				got <- e
			}
			return nil
		})
	}()
	if err := c.Do(t.Context(), "POST", "/v1/events", store.Event{Kind: "note", Message: "before shutdown"}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Message != "before shutdown" {
			t.Fatalf("the stream delivered %+v", e)
		}
	case err := <-streamEnd:
		t.Fatalf("the stream ended before shutdown: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("the stream did not deliver the note")
	}

	cancel()
	select {
	case err := <-streamEnd:
		// Stream returns nil when the body ends with EOF (a clean end of
		// the response), an error when the connection breaks.
		if err != nil {
			t.Errorf("the stream ended with %v, want a clean end (EOF)", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("the event stream was still open after the API server shut down; the log:\n%s", logs)
	}
	releaseRun()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
}
