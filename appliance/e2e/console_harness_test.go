package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/outposthq/outpost/appliance/internal/browsertest"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/pki"
)

// consoleSite is a real applianced serving its console over HTTPS by
// default, in a namespace of the lab with a QEMU VM behind ipmi_sim
// (serial-over-LAN included) whose BMC it drives. Its API listens on
// the namespace's network address (consoleAPIHost, on the VM's bridge),
// so it serves a certificate from the site's API CA, which names the
// loopback names too; the test forwards the same port of its own
// loopback to it, so that the browser, outside, sees the console at URL
// and trusts it by that CA alone, as api-ca.pem holds it.
type consoleSite struct {
	t      *testing.T
	NS     *lab.Netns
	BMC    *lab.IPMISim
	Serial string // the VM's serial console, as a file
	URL    string // https://local, forwarded to addr
	API    *client.Client
	Token  string // admin's
	// CA is the site's API CA, read from api-ca.pem; CAFingerprint the
	// fingerprint applianced printed at start, which is CA's.
	CA            *x509.Certificate
	CAFingerprint string
	bin           string
	dataDir       string
	addr          string // the API's, in the namespace
	local         string // 127.0.0.1:port, where the test forwards from
	raft          string
	images        lab.Images
	proc          *lab.Process
	runs          int
}

// consoleAPIHost is the console appliance's address on the VM's bridge:
// not loopback, so its API serves HTTPS by default.
const consoleAPIHost = "198.18.0.1"

// startConsoleSite starts the VM's namespace and BMC, and applianced in
// it, and waits until applianced leads.
func startConsoleSite(t *testing.T) *consoleSite {
	bin := applianced(t)
	lab.Require(t, "root", "ip", "qemu-system-x86_64", "ipmi_sim", "ipmitool", "chromium", "certutil")
	imgs := lab.BuildImages(t)
	ns, sim, serial := lab.StartConsoleVM(t, imgs, "cbrowser")
	ns.AddAddr("br0", consoleAPIHost+"/24")
	s := &consoleSite{t: t, NS: ns, BMC: sim, Serial: serial, bin: bin,
		dataDir: filepath.Join(t.TempDir(), "n1"), images: imgs}
	// The same port on the test's loopback as on the namespace's
	// address; freePort's is below the ephemeral range, so it is free
	// in the namespace too.
	port := freePort(t)
	s.addr = fmt.Sprintf("%s:%d", consoleAPIHost, port)
	s.raft = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.local = fmt.Sprintf("127.0.0.1:%d", port)
	s.URL = "https://" + s.local
	s.forward()
	s.Start()
	s.Token = s.waitToken()
	api, err := client.NewPinned(s.URL, s.Token, client.Pin{Fingerprint: s.CAFingerprint, CAFile: s.caFile()})
	if err != nil {
		t.Fatalf("pin the site's API CA: %v", err)
	}
	s.API = api
	s.waitLeader()
	return s
}

func (s *consoleSite) caFile() string { return filepath.Join(s.dataDir, "api-ca.pem") }

// readCA waits for the line where applianced prints the site's API CA
// fingerprint and the file it wrote the CA to, and checks that the file
// is where the line says and holds that CA.
func (s *consoleSite) readCA() (*x509.Certificate, string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), time.Minute)
	defer cancel()
	re := regexp.MustCompile(`site API CA (sha256:[0-9a-f]{64}) \(PEM in (\S+)\)`)
	line, err := s.proc.WaitForLine(ctx, re)
	if err != nil {
		s.t.Fatal(err)
	}
	m := re.FindStringSubmatch(line)
	if m[2] != s.caFile() {
		s.t.Errorf("applianced printed the API CA's file %s, want %s", m[2], s.caFile())
	}
	pemBytes, err := os.ReadFile(s.caFile())
	if err != nil {
		s.t.Fatal(err)
	}
	if fp, err := pki.PEMFingerprint(pemBytes); err != nil || fp != m[1] {
		s.t.Fatalf("api-ca.pem is %s (%v), applianced printed %s", fp, err, m[1])
	}
	b, _ := pem.Decode(pemBytes)
	ca, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		s.t.Fatalf("api-ca.pem: %v", err)
	}
	return ca, m[1]
}

// Browser starts chromium allowed to reach the console only, trusting
// the site's API CA (and no other CA of its own).
func (s *consoleSite) Browser() *browsertest.Browser {
	return browsertest.Start(s.t, browsertest.Allow(s.URL), browsertest.TrustCA(s.CA))
}

// Start starts applianced on the site's data directory (again, after
// Stop).
func (s *consoleSite) Start() {
	s.t.Helper()
	s.runs++
	s.proc = lab.StartProcess(s.t, lab.ProcessConfig{
		Name:  fmt.Sprintf("applianced-%d", s.runs),
		Netns: s.NS,
		Args: []string{s.bin, "-id", "n1", "-data-dir", s.dataDir,
			"-api-addr", s.addr, "-raft-addr", s.raft, "-artifact-dir", s.images.Dir,
			"-bmc-poll-interval", "2s", "-log-level", "debug"},
	})
	ca, fp := s.readCA()
	if s.CA == nil {
		s.CA, s.CAFingerprint = ca, fp
	} else if fp != s.CAFingerprint {
		s.t.Fatalf("applianced restarted with the API CA %s, it had %s: the browser and the client trust that one", fp, s.CAFingerprint)
	}
	if s.API != nil {
		s.waitLeader()
	}
}

// Stop stops applianced as an operator would (SIGTERM) and waits for it
// to exit.
func (s *consoleSite) Stop() {
	s.t.Helper()
	s.proc.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(s.t.Context(), 30*time.Second)
	defer cancel()
	if err := s.proc.Wait(ctx); err != nil {
		s.t.Errorf("applianced did not stop on SIGTERM: %v", err)
		s.proc.Kill()
	}
}

// forward serves local on the test's loopback, each connection passed
// to applianced's API in the namespace, until the test ends.
func (s *consoleSite) forward() {
	ln, err := net.Listen("tcp", s.local)
	if err != nil {
		s.t.Fatalf("forward %s: %v", s.local, err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	s.t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.pipe(c, track)
		}
	}()
}

// pipe copies between c and a new connection to applianced; while
// applianced is down the connection is closed at once, as a stopped
// appliance's would be refused.
func (s *consoleSite) pipe(c net.Conn, track func(net.Conn, bool)) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	u, err := s.NS.DialContext(ctx, "tcp", s.addr)
	cancel()
	if err != nil {
		return
	}
	defer u.Close()
	track(c, true)
	track(u, true)
	defer track(c, false)
	defer track(u, false)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
	go func() { defer wg.Done(); io.Copy(c, u); c.(*net.TCPConn).CloseWrite() }()
	wg.Wait()
}

// waitToken waits for the first admin token.
func (s *consoleSite) waitToken() string {
	s.t.Helper()
	var token string
	s.waitFor(time.Minute, "the admin token", func() error {
		var err error
		token, err = labsite.AdminToken(s.dataDir)
		return err
	})
	return token
}

// waitLeader waits until applianced leads its cluster.
func (s *consoleSite) waitLeader() {
	s.t.Helper()
	s.waitFor(time.Minute, "applianced to lead", func() error {
		ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
		defer cancel()
		st, err := s.API.Cluster(ctx)
		if err != nil {
			return err
		}
		if st.LeaderID != "n1" {
			return fmt.Errorf("leader %q", st.LeaderID)
		}
		return nil
	})
}

func (s *consoleSite) waitFor(timeout time.Duration, what string, cond func() error) {
	s.t.Helper()
	err := labsite.Poll(s.t.Context(), timeout, func() error {
		if !s.proc.Running() {
			return fmt.Errorf("applianced exited: %v", s.proc.Err())
		}
		return cond()
	})
	if err != nil {
		s.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// NewToken makes a token of role and returns its secret.
func (s *consoleSite) NewToken(name string, role access.Role) string {
	s.t.Helper()
	tok, err := s.API.CreateToken(s.t.Context(), httpapi.TokenRequest{Name: name, Role: role})
	if err != nil {
		s.t.Fatalf("create token %s: %v", name, err)
	}
	return tok.Token
}

// waitJS waits until the expression is true in the page, failing the
// test with what was awaited after timeout. It asks again every 100 ms,
// in whatever document the tab holds then: a navigation under way
// makes one ask fail, not the wait.
func waitJS(t *testing.T, b *browsertest.Browser, timeout time.Duration, what, expr string) {
	t.Helper()
	err := labsite.Poll(t.Context(), timeout, func() error {
		ctx, cancel := context.WithTimeout(b.Context(), 10*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for %s (%s): %v", what, expr, err)
	}
}

// clickToPage clicks the element data-test=name, which loads another
// page, and waits until that page has loaded; it fails the test unless
// the page came with status 200.
func clickToPage(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, browsertest.ClickAction(browsertest.Sel(name)))
	if err != nil {
		t.Fatalf("click %s: %v", name, err)
	}
	if resp.Status != 200 {
		t.Fatalf("click %s: the page %s came with %d", name, resp.URL, resp.Status)
	}
}

// evalJS evaluates expr in the page (awaiting a promise) and returns its
// value.
func evalJS[T any](t *testing.T, b *browsertest.Browser, what, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// streamRecorder runs in every document before the page's own scripts:
// it keeps the id of every event the page's EventSource hands to its
// "event" listeners in window.outpostStream, and the event number the
// page was rendered at in window.outpostFirst, so that a test sees what
// the stream delivered, not only what the page shows.
const streamRecorder = `(() => {
  window.outpostStream = [];
  document.addEventListener("DOMContentLoaded", () => {
    window.outpostFirst = document.body.getAttribute("data-last");
  });
  const add = EventSource.prototype.addEventListener;
  EventSource.prototype.addEventListener = function (type, fn, opts) {
    if (type === "event") {
      const inner = fn;
      fn = function (e) { window.outpostStream.push(e.lastEventId); return inner.apply(this, arguments); };
    }
    return add.call(this, type, fn, opts);
  };
})()`

// recordStream installs streamRecorder in the browser's tab.
func recordStream(t *testing.T, b *browsertest.Browser) {
	t.Helper()
	err := chromedp.Do(b.Context(), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: streamRecorder})
		return err
	}))
	if err != nil {
		t.Fatalf("record the event stream: %v", err)
	}
}
