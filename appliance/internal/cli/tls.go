package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
)

// centralHTTP is the HTTP client the central client sends through: the
// system's roots, or the CA the options pin (--ca-file: a PEM bundle the
// certificate must chain to; --ca-fingerprint: the SHA-256 of the CA
// certificate the server presents in its chain). A token crosses the
// network only over TLS: plain http:// is refused but on loopback.
func (o *options) centralHTTP(rawURL string) (*http.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("central URL: %w", err)
	}
	if u.Scheme == "http" {
		if o.caFingerprint != "" || o.caFile != "" {
			return nil, fmt.Errorf("central URL %s: a CA pin needs an https:// URL", rawURL)
		}
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("central URL %s: a token crosses the network only over TLS: use https:// (plain http is for loopback)", rawURL)
		}
		return &http.Client{Timeout: 60 * time.Second}, nil
	}
	cfg, err := o.pinnedTLS()
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Timeout: 60 * time.Second, Transport: tr}, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// pinnedTLS is the TLS configuration of the options' CA pin; with none,
// the system's roots.
func (o *options) pinnedTLS() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
		}
	}
	if o.caFingerprint == "" {
		return cfg, nil
	}
	want, err := store.NormalizeFingerprint(o.caFingerprint)
	if err != nil {
		return nil, fmt.Errorf("--ca-fingerprint: %w", err)
	}
	// The chain is checked here, against the pinned CA, instead of the
	// system's roots: VerifyConnection runs on every handshake.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyPinned(cs, want, cfg.RootCAs) }
	return cfg, nil
}

// verifyPinned checks that the server's chain holds the CA certificate
// whose fingerprint is want, and that the server's certificate chains to
// it (and to extra's roots, if any) for the name dialled.
func verifyPinned(cs tls.ConnectionState, want string, extra *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the server presented no certificate")
	}
	if "sha256:"+pki.CertFingerprint(cs.PeerCertificates[0]) == want && extra == nil {
		return nil // the server's own certificate is the one pinned
	}
	roots := x509.NewCertPool()
	pinned := false
	for _, c := range cs.PeerCertificates[1:] {
		if "sha256:"+pki.CertFingerprint(c) == want {
			roots.AddCert(c)
			pinned = true
		}
	}
	if !pinned {
		return fmt.Errorf("the server's certificate chain holds no CA of fingerprint %s", want)
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName, Intermediates: x509.NewCertPool()}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("the server's certificate does not chain to the pinned CA: %w", err)
	}
	if extra != nil {
		opts.Roots = extra
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
	}
	return nil
}
