package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/internal/pki"
)

// TestCentralHTTPSOnTheNetwork: centrald on a network address (198.18.0.1,
// in the site's namespace) serves its API and the sync websocket over
// HTTPS with a certificate from its own API CA: it prints the CA's
// fingerprint and writes its PEM; curl and openssl verify the chain with
// the PEM; plain HTTP is refused; a client pinning another CA is refused
// with both fingerprints named; a site pinning another fingerprint does
// not connect, and pinning central's (central_ca_fingerprint) syncs over
// wss://. The site's credential is in neither log.
func TestCentralHTTPSOnTheNetwork(t *testing.T) {
	lab.Require(t, "root", "ip", "curl", "openssl")
	s := labsite.Start(t, labsite.Config{Applianced: applianced(t), Images: lab.Images{Dir: t.TempDir()}, LogLevel: "debug"})
	addr := labsite.ServerIP + ":7443"
	cen := labsite.StartCentralIn(t, centrald(t), s.NS, addr, "-heartbeat", "1s", "-log-level", "debug",
		"-raft-addr", labsite.ServerIP+":7444", "-node-id", "c1")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	line, err := cen.Proc.WaitForLine(ctx, regexp.MustCompile(`central API CA sha256:`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, cen.CAFingerprint+" (PEM in "+cen.CAFile+")") {
		t.Fatalf("centrald printed %q, want its api-ca.pem's fingerprint %s and path", line, cen.CAFingerprint)
	}

	out, err := s.NS.Run(ctx, "curl", "-sS", "--fail", "--cacert", cen.CAFile, "-H", "Authorization: Bearer "+cen.Token, cen.URL+"/v1/sites")
	if err != nil {
		t.Errorf("curl --cacert api-ca.pem %s: %v\n%s", cen.URL, err, out)
	}
	out, err = s.NS.Run(ctx, "sh", "-c", "openssl s_client -connect "+addr+" -CAfile "+cen.CAFile+
		" -verify_return_error -verify_ip "+labsite.ServerIP+" </dev/null")
	if err != nil || !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Errorf("openssl s_client -verify_return_error: %v\n%s", err, out)
	}

	resp, err := s.NS.HTTPClient().Get("http://" + addr + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "HTTPS server") {
			t.Errorf("plain HTTP to central: %d %s, want 400 (an HTTP request to an HTTPS server)", resp.StatusCode, body)
		}
	}

	other, _ := pki.DeriveAPICA(randomSecret(t), "central", pki.Generation)
	wrong, err := pki.PinnedTLS(other.Fingerprint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.NS.HTTPSClient(wrong).Get(cen.URL + "/healthz")
	if !errors.Is(err, pki.ErrPinMismatch) || !strings.Contains(err.Error(), other.Fingerprint()) || !strings.Contains(err.Error(), cen.CAFingerprint) {
		t.Errorf("a client pinning another CA: %v, want a mismatch naming %s and %s", err, other.Fingerprint(), cen.CAFingerprint)
	}

	credFile := cen.NewSite("lab")
	args := cen.SyncArgs(cen.URL, "lab", credFile)
	pinned := cen.CAFingerprint
	cen.CAFile, cen.CAFingerprint = "", other.Fingerprint() // the site pins another central
	s.Reconfigure(t, cen.SyncArgs(cen.URL, "lab", credFile)...)
	if _, err := s.Process().WaitForLine(ctx, regexp.MustCompile(`sync connection ended.*expected CA `+other.Fingerprint())); err != nil {
		t.Fatal(err)
	}
	if connected(ctx, t, cen) {
		t.Fatal("a site pinning another CA connected")
	}
	s.Reconfigure(t, args...) // central_ca_file and central_ca_fingerprint: central's
	if err := labsite.Poll(ctx, time.Minute, func() error {
		if !connected(ctx, t, cen) {
			return errors.New("the site is not connected")
		}
		return nil
	}); err != nil {
		t.Fatalf("the site pinning central's CA: %v", err)
	}
	cen.CAFingerprint = pinned

	// A second node joins over HTTPS by c1's fingerprint, derives the
	// same CA from central's key, and serves with it (once it has the
	// token, which it answers GET /v1/cluster by, from the log).
	c2 := cen.Join(centrald(t), labsite.ServerIP+":7445", labsite.ServerIP+":7446", "c2", "-heartbeat", "1s")
	if c2.CAFingerprint != cen.CAFingerprint {
		t.Errorf("c2 serves the API CA %s, c1 %s: every node must derive the same", c2.CAFingerprint, cen.CAFingerprint)
	}
	if err := labsite.Poll(ctx, time.Minute, func() error { return c2.Do("GET", "/v1/cluster", nil, nil) }); err != nil {
		t.Fatalf("c2 over HTTPS pinned by c1's fingerprint: %v", err)
	}
	cred, _ := os.ReadFile(credFile)
	for name, p := range map[string]*lab.Process{"applianced": s.Process(), "centrald": cen.Proc} {
		for _, f := range []string{p.Stdout, p.Stderr} {
			logs, _ := os.ReadFile(f)
			if strings.Contains(string(logs), strings.TrimSpace(string(cred))) {
				t.Errorf("%s's output %s holds the site's credential", name, f)
			}
		}
	}
}

// connected reports whether central sees site lab connected, asking
// again while central cannot say (an election under a busy CPU).
func connected(ctx context.Context, t *testing.T, cen *labsite.Central) bool {
	var v struct {
		Sync struct {
			Connected bool `json:"connected"`
		} `json:"sync"`
	}
	if err := labsite.Poll(ctx, time.Minute, func() error { return cen.Do("GET", "/v1/sites/lab", nil, &v) }); err != nil {
		t.Fatal(fmt.Errorf("central: %w", err))
	}
	return v.Sync.Connected
}
