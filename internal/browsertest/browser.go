package browsertest

import (
	"context"
	"crypto/x509"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ActionTimeout bounds each helper's action, so a page that never shows
// what a test waits for fails the test with the page's state rather than
// hang it.
var ActionTimeout = time.Minute

// Browser is one headless chromium with one tab.
type Browser struct {
	t   testing.TB
	ctx context.Context // the tab's
	rec *recorder
}

// config is what Start's options set.
type config struct {
	allow  []string // host:port
	ca     []*x509.Certificate
	width  int
	height int
}

// Option configures Start.
type Option func(*config)

// Allow lets the page reach the hosts of these URLs (scheme://host:port;
// the port defaults to the scheme's). Every other host is unreachable.
func Allow(urls ...string) Option {
	return func(c *config) {
		for _, u := range urls {
			c.allow = append(c.allow, hostPort(u))
		}
	}
}

// TrustCA makes the browser trust certificates that ca issued.
func TrustCA(ca *x509.Certificate) Option {
	return func(c *config) { c.ca = append(c.ca, ca) }
}

// WindowSize sets the window's size in CSS pixels (1280×800 by default).
func WindowSize(width, height int) Option {
	return func(c *config) { c.width, c.height = width, height }
}

// Start launches chromium for t and stops it when t ends.
func Start(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	require(t, "chromium", "chromium")
	cfg := config{width: 1280, height: 800}
	for _, o := range opts {
		o(&cfg)
	}
	home := t.TempDir()
	if len(cfg.ca) > 0 {
		require(t, "certutil", "libnss3-tools")
		if err := trustCAs(t.Context(), home, cfg.ca); err != nil {
			t.Fatalf("browsertest: %v", err)
		}
	}
	b := &Browser{t: t, rec: &recorder{}}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(t.Context()), allocatorOptions(t, home, cfg)...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.rec.listen),
		chromedp.WithLogf(t.Logf), chromedp.WithErrorf(t.Logf))
	b.ctx = ctx
	t.Cleanup(func() {
		if t.Failed() {
			b.saveFailureScreenshot()
		}
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: start chromium: %v", err)
	}
	return b
}

// allocatorOptions are the flags of chromium: chromedp's defaults, a
// profile and home of the test's, and the proxy that keeps every host
// but the allowed ones out of reach.
func allocatorOptions(t testing.TB, home string, cfg config) []chromedp.ExecAllocatorOption {
	bypass := append([]string{"<-loopback>"}, cfg.allow...)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME="+home),
		chromedp.WindowSize(cfg.width, cfg.height),
		chromedp.ProxyServer("http://"+deadAddr(t)),
		chromedp.Flag("proxy-bypass-list", strings.Join(bypass, ";")),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("dns-prefetch-disable", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	return opts
}

// require checks that program is installed: when it is not, the test
// fails if CI is set (a test that proves the product works may not be
// skipped there, as lab.Require has it) and is skipped elsewhere,
// naming the Debian package to install.
func require(t testing.TB, program, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(program); err == nil {
		return
	}
	msg := "browsertest: missing program " + program + " (apt-get install " + pkg + ")"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set: a missing requirement is a failure)")
	}
	t.Skip(msg)
}

// chromiumPath finds Debian's chromium (require has checked it is
// there).
func chromiumPath(t testing.TB) string {
	for _, p := range []string{"/usr/bin/chromium", "/usr/lib/chromium/chromium"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "chromium"
}

// deadAddr returns a loopback address nothing listens on: a port the
// kernel gave and took back. The browser's proxied requests fail there.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("browsertest: pick a dead port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// hostPort is u's host:port, with the scheme's port by default.
func hostPort(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u
	}
	if p.Port() != "" {
		return p.Host
	}
	port := "80"
	if p.Scheme == "https" || p.Scheme == "wss" {
		port = "443"
	}
	return net.JoinHostPort(p.Hostname(), port)
}

// saveFailureScreenshot keeps the page as it was when the test failed.
func (b *Browser) saveFailureScreenshot() {
	png, err := b.screenshot()
	if err != nil {
		b.t.Logf("browsertest: no screenshot of the failed page: %v", err)
		return
	}
	path := filepath.Join(artifactDir(b.t), "failure.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("browsertest: save the failed page: %v", err)
		return
	}
	b.t.Logf("browsertest: the page when the test failed: %s", path)
}

// artifactDir is the test's artifact directory where it has one.
func artifactDir(t testing.TB) string {
	if a, ok := t.(interface{ ArtifactDir() string }); ok {
		return a.ArtifactDir()
	}
	return t.TempDir()
}
