// Package testcentral starts a real central in-process for tests outside
// central's tree (the outpost CLI's): the same app.Run centrald runs, on
// a loopback port and a temporary data directory, stopped at the test's
// cleanup. Only tests import it.
package testcentral

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/internal/app"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/config"
)

// Central is a running central.
type Central struct {
	// URL is its API's, "http://127.0.0.1:port" (https with TLS).
	URL string
	// Token is its first admin token, and TokenFile the file it is in.
	Token     string
	TokenFile string

	t    testing.TB
	cfg  *config.Config
	stop func() // stops the running central; nil when stopped
}

// Option changes the configuration Start runs central with.
type Option func(*config.Config)

// Replicated runs central as the one node of a Raft cluster (so that it
// has a cluster to show), on a free loopback Raft address.
func Replicated(t testing.TB) Option {
	return func(c *config.Config) { c.RaftAddr, c.NodeID = centraltest.FreeAddr(t), "c1" }
}

// TLS serves the API over HTTPS with the certificate (a PEM chain) and
// key in these files.
func TLS(certFile, keyFile string) Option {
	return func(c *config.Config) { c.TLSCert, c.TLSKey = certFile, keyFile }
}

// startTimeout bounds the wait for central to print its URL and token:
// generous for a loaded machine; the wait ends as soon as they are there.
const startTimeout = time.Minute

// Start runs central until the test ends and returns once it has printed
// its first admin token (it is then stored).
func Start(t testing.TB, opts ...Option) *Central {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.Addr = filepath.Join(t.TempDir(), "central"), "127.0.0.1:0"
	for _, o := range opts {
		o(cfg)
	}
	c := &Central{t: t, cfg: cfg}
	t.Cleanup(c.Stop)
	m := c.run(regexp.MustCompile(`API at (https?://\S+),[^\n]*\n(?s:.*)admin token \(shown once; also saved to ` +
		regexp.QuoteMeta(cfg.AdminTokenPath()) + `\):\n  (\S+)\n`))
	c.URL, c.Token, c.TokenFile = m[1], m[2], cfg.AdminTokenPath()
	// A restart serves the same address.
	cfg.Addr = strings.TrimPrefix(strings.TrimPrefix(c.URL, "http://"), "https://")
	return c
}

// Stop stops central and waits until it has; a stopped central stays
// stopped. Its data directory stays, for Restart.
func (c *Central) Stop() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
}

// Restart starts a stopped central again on its data directory and
// address, and returns once it serves.
func (c *Central) Restart() {
	c.t.Helper()
	if c.stop != nil {
		c.t.Fatal("testcentral: Restart of a running central")
	}
	c.run(regexp.MustCompile(`API at (https?://\S+),`))
}

// run runs central until Stop and returns the submatches of re once it
// has printed a match.
func (c *Central) run(re *regexp.Regexp) []string {
	t := c.t
	t.Helper()
	out := &centraltest.Buffer{}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, c.cfg, log, out) }()
	c.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("testcentral: central stopped with %v", err)
		}
	}
	deadline := time.After(startTimeout)
	for {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("testcentral: central stopped before it was ready (%v); it printed:\n%s", err, out)
		case <-deadline:
			t.Fatalf("testcentral: not ready in %v; central printed:\n%s", startTimeout, out)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
