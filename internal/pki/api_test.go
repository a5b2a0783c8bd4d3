package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func mustAPICA(t *testing.T, s []byte, cluster string, gen uint64) *APICA {
	t.Helper()
	ca, err := DeriveAPICA(s, cluster, gen)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestDeriveAPICADeterministic(t *testing.T) {
	a, b := mustAPICA(t, secret(1), "site", 1), mustAPICA(t, secret(1), "site", 1)
	if !bytes.Equal(a.Certificate().Raw, b.Certificate().Raw) {
		t.Fatal("the same secret, cluster and generation gave two API CA certificates")
	}
	pub, ok := a.Certificate().PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("API CA key is a %T, want ECDSA P-256", a.Certificate().PublicKey)
	}
	if !strings.HasPrefix(a.Fingerprint(), "sha256:") || len(a.Fingerprint()) != len("sha256:")+64 {
		t.Errorf("fingerprint %q: want sha256: and 64 hex digits", a.Fingerprint())
	}
	for name, other := range map[string]*APICA{
		"another secret":     mustAPICA(t, secret(2), "site", 1),
		"another cluster":    mustAPICA(t, secret(1), "central", 1),
		"another generation": mustAPICA(t, secret(1), "site", 2),
	} {
		if other.Fingerprint() == a.Fingerprint() || other.Certificate().PublicKey.(*ecdsa.PublicKey).Equal(pub) {
			t.Errorf("%s gave the same API CA", name)
		}
	}
	if _, err := DeriveAPICA(secret(1)[:16], "site", 1); err == nil {
		t.Error("a 16-byte secret was accepted")
	}
}

// serve runs an HTTPS server with srv's configuration and returns its
// URL.
func serve(t *testing.T, srv *APIServer) string {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	ts.Listener = tls.NewListener(ts.Listener, srv.TLSConfig())
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.Start()
	t.Cleanup(ts.Close)
	return strings.Replace(ts.URL, "http:", "https:", 1)
}

func get(cfg *tls.Config, url string) error {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func TestPinnedTLS(t *testing.T) {
	ca := mustAPICA(t, secret(1), "site", 1)
	other := mustAPICA(t, secret(9), "site", 1)
	srv, err := NewAPIServer(ca, []string{"https://node1.example:7080", "198.18.0.1:7080"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, srv)
	for name, tc := range map[string]struct {
		fingerprint string
		pem         []byte
		wantErr     bool
	}{
		"fingerprint":                {fingerprint: ca.Fingerprint()},
		"bare upper-case hex":        {fingerprint: strings.ToUpper(strings.TrimPrefix(ca.Fingerprint(), "sha256:"))},
		"PEM":                        {pem: ca.CertificatePEM()},
		"PEM and its fingerprint":    {fingerprint: ca.Fingerprint(), pem: ca.CertificatePEM()},
		"another CA's fingerprint":   {fingerprint: other.Fingerprint(), wantErr: true},
		"another CA's PEM":           {pem: other.CertificatePEM(), wantErr: true},
		"both PEMs, the other's pin": {fingerprint: other.Fingerprint(), pem: append(ca.CertificatePEM(), other.CertificatePEM()...), wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := PinnedTLS(tc.fingerprint, tc.pem)
			if err != nil {
				t.Fatal(err)
			}
			err = get(cfg, url)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("pinned %s: %v", name, err)
				}
				return
			}
			if !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("err %v, want ErrPinMismatch", err)
			}
			for _, want := range []string{other.Fingerprint(), ca.Fingerprint()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %s (expected and presented fingerprints)", err, want)
				}
			}
		})
	}
}

func TestPinnedTLSRefusesBadPins(t *testing.T) {
	ca := mustAPICA(t, secret(1), "site", 1)
	for name, tc := range map[string]struct {
		fingerprint string
		pem         []byte
		want        string
	}{
		"nothing":               {want: "pin a CA"},
		"short fingerprint":     {fingerprint: "sha256:abcd", want: "64 hex digits"},
		"not hex":               {fingerprint: "sha256:" + strings.Repeat("zz", 32), want: "64 hex digits"},
		"no certificate":        {pem: []byte("hello"), want: "no PEM certificate"},
		"PEM without that pin":  {fingerprint: mustAPICA(t, secret(3), "site", 1).Fingerprint(), pem: ca.CertificatePEM(), want: "no certificate with the pinned fingerprint"},
		"a wrong-prefixed hash": {fingerprint: "md5:" + strings.Repeat("ab", 32), want: "64 hex digits"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := PinnedTLS(tc.fingerprint, tc.pem)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestServingCertificateNamesHosts(t *testing.T) {
	ca := mustAPICA(t, secret(1), "site", 1)
	c, err := ca.IssueServing([]string{"https://node1.example:7080/", "198.18.0.1:7080", "node1.example", ""}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	for _, host := range []string{"node1.example", "198.18.0.1", "localhost", "127.0.0.1", "::1"} {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "198.18.0.2"}); err == nil {
		t.Error("the certificate verified for a host it does not name")
	}
	if got := len(c.Certificate); got != 2 || !bytes.Equal(c.Certificate[1], ca.Certificate().Raw) {
		t.Errorf("chain of %d certificates, want the leaf and the CA", got)
	}
}

func TestAPIServerRenews(t *testing.T) {
	ca := mustAPICA(t, secret(1), "site", 1)
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	srv, err := NewAPIServer(ca, []string{"127.0.0.1"}, func() time.Time { return *now.Load() })
	if err != nil {
		t.Fatal(err)
	}
	first, _ := srv.certificate()
	if again, _ := srv.certificate(); again != first {
		t.Fatal("a fresh certificate was replaced")
	}
	later := start.Add(ServingValidity - ServingValidity/3 + time.Minute)
	now.Store(&later)
	renewed, err := srv.TLSConfig().GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Fatalf("not renewed with a third of its validity left: %v, then %v", first.Leaf.NotAfter, renewed.Leaf.NotAfter)
	}
}

// TestPinnedTLSNotSystemRoots: a server whose certificate a public CA or
// any other signed is refused, even if the system would trust it.
func TestPinnedTLSNotSystemRoots(t *testing.T) {
	ts := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer ts.Close()
	cfg, err := PinnedTLS(mustAPICA(t, secret(1), "site", 1).Fingerprint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := get(cfg, ts.URL); !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("err %v, want ErrPinMismatch", err)
	}
	// The same server is trusted by a client that trusts its CA: the
	// refusal above is the pin's.
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	if err := get(&tls.Config{RootCAs: pool}, ts.URL); err != nil {
		t.Fatal(err)
	}
}
