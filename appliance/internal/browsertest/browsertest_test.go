package browsertest_test

import (
	"bytes"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/internal/browsertest"
)

// serve starts an HTTPS server on loopback with a certificate of ca
// (the lab's test CA: ECDSA P-256).
func serve(t *testing.T, ca *lab.CA, h http.Handler) *httptest.Server {
	s := httptest.NewUnstartedServer(h)
	// The browser test refuses certificates on purpose: log to the test.
	s.Config.ErrorLog = log.New(t.Output(), "server: ", 0)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue("127.0.0.1")}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

const page = `<!doctype html>
<title>browsertest</title>
<p data-test="status">waiting</p>
<input data-test="name">
<button data-test="go" onclick="document.querySelector('[data-test=status]').textContent = 'hello ' + document.querySelector('[data-test=name]').value">Go</button>
<script src="%s/evil.js"></script>
<script src="https://cdn.example.net/lib.js"></script>
`

// TestBlocksAndRecordsForeignRequests: a page served over HTTPS by a CA
// the browser was told to trust loads; its scripts from another loopback
// port and from a CDN are recorded, fail, and never reach their server;
// filling a field and clicking a button change the page.
func TestBlocksAndRecordsForeignRequests(t *testing.T) {
	ca := lab.NewCA(t, "browsertest CA")
	var cdnHits atomic.Int64
	cdn := serve(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnHits.Add(1)
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.querySelector('[data-test=status]').textContent = 'pwned'`)
	}))
	app := serve(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, page, cdn.URL)
	}))

	b := browsertest.Start(t, browsertest.Allow(app.URL), browsertest.TrustCA(ca.Cert))
	b.Navigate(app.URL + "/")
	if got := b.TextOf("status"); got != "waiting" {
		t.Errorf("status = %q before the click: a foreign script ran", got)
	}
	b.Fill("name", "technician")
	b.Click("go")
	b.WaitText("hello technician")

	foreign := b.Foreign(app.URL)
	want := []string{cdn.URL + "/evil.js", "https://cdn.example.net/lib.js"}
	var got []string
	for _, r := range foreign {
		got = append(got, r.URL)
		if r.Failed == "" {
			t.Errorf("foreign request %s did not fail", r.URL)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("foreign requests = %v, want %v (all: %+v)", got, want, b.Requests())
	}
	if n := cdnHits.Load(); n != 0 {
		t.Errorf("the other loopback server was reached %d times", n)
	}
	if all := b.Requests(); len(all) == 0 || all[0].URL != app.URL+"/" || all[0].Failed != "" {
		t.Errorf("the page's own load was not recorded as it was: %+v", all)
	}
	if png := b.Screenshot(); !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("screenshot is not a PNG: % x", png[:min(8, len(png))])
	}
}

// TestUntrustedCAIsRefused: without TrustCA the same server's page does
// not load, so trusting the CA is what made it load above.
func TestUntrustedCAIsRefused(t *testing.T) {
	ca := lab.NewCA(t, "browsertest CA")
	app := serve(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	b := browsertest.Start(t, browsertest.Allow(app.URL))
	err := chromedp.Do(b.Context(), chromedp.Navigate(app.URL+"/"))
	if err == nil || !strings.Contains(err.Error(), "CERT") {
		t.Fatalf("navigating to a server of an untrusted CA: %v, want a certificate error", err)
	}
}

// TestCapture: with -browsertest.screenshots set, Capture writes the page
// as a PNG named after it; without it, nothing.
func TestCapture(t *testing.T) {
	ca := lab.NewCA(t, "browsertest CA")
	app := serve(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><p data-test="status">machines</p>`)
	}))
	b := browsertest.Start(t, browsertest.Allow(app.URL), browsertest.TrustCA(ca.Cert))
	b.Navigate(app.URL + "/")

	old := browsertest.ScreenshotDir()
	t.Cleanup(func() { flag.Set("browsertest.screenshots", old) })
	flag.Set("browsertest.screenshots", "")
	if path := b.Capture("machines"); path != "" {
		t.Errorf("Capture without the flag wrote %s", path)
	}
	dir := filepath.Join(t.TempDir(), "screenshots")
	flag.Set("browsertest.screenshots", dir)
	path := b.Capture("machines")
	if path != filepath.Join(dir, "machines.png") {
		t.Fatalf("Capture wrote %q, want machines.png in %s", path, dir)
	}
	png, err := os.ReadFile(path)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
}
