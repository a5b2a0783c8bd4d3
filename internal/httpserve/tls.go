package httpserve

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"

	"github.com/outposthq/outpost/internal/pki"
)

// TLS says how an API listener serves: HTTPS by default, plain HTTP on
// loopback or when the operator insists.
//
//   - The operator's certificate (CertFile and KeyFile), when set, is
//     served on every address, loopback included.
//   - A listener on a loopback address serves plain HTTP: only this
//     machine reaches it (`make run`, scripts, a tunnel's end).
//   - Any other listener (a wildcard included) serves HTTPS with the
//     cluster's own serving certificate (Cluster), unless Insecure is
//     set: then plain HTTP, with a warning at start.
type TLS struct {
	// CertFile and KeyFile are the operator's certificate and key (PEM).
	CertFile, KeyFile string
	// Insecure serves plain HTTP on a non-loopback address: tokens and
	// secrets then cross the network in the clear.
	Insecure bool
	// InsecureFlag names the setting that sets Insecure, for the
	// warning ("insecure_http (-insecure-http)").
	InsecureFlag string
	// Cluster makes the cluster's serving configuration
	// (pki.APIServer's), only when it is served.
	Cluster func() (*tls.Config, error)
}

// IsLoopback reports whether addr (a listener's) is on a loopback
// address.
func IsLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// HostIsLoopback reports whether host (an address's host, or a name) is
// a loopback address or "localhost".
func HostIsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// For returns the TLS configuration a listener on addr serves with, nil
// for plain HTTP, and logs which it chose (a warning for plain HTTP off
// loopback).
func (t TLS) For(addr net.Addr, log *slog.Logger) (*tls.Config, error) {
	switch {
	case t.CertFile != "":
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert and tls_key: %w", err)
		}
		log.Info("serving HTTPS with the operator's certificate", "addr", addr.String(), "cert", t.CertFile)
		return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
	case IsLoopback(addr):
		log.Info("serving plain HTTP on a loopback address", "addr", addr.String())
		return nil, nil
	case t.Insecure:
		log.Warn("serving plain HTTP on a network address: tokens and secrets cross the network in the clear; "+
			"unset "+t.InsecureFlag+" to serve HTTPS", "addr", addr.String())
		return nil, nil
	}
	c, err := t.Cluster()
	if err != nil {
		return nil, err
	}
	log.Info("serving HTTPS with a certificate from the cluster's API CA", "addr", addr.String())
	return c, nil
}

// Publish makes ca the cluster's CA for a listener on addr and publishes
// it: its PEM written to path (0644), its fingerprint printed on out as
// "<label> sha256:... (PEM in <path>)<hint>" and logged. It returns the
// TLS configuration the listener serves with (For), a serving
// certificate from ca for hosts when it serves the cluster's own.
func (t TLS) Publish(ca *pki.APICA, path, label, hint string, hosts []string, addr net.Addr, log *slog.Logger, out io.Writer) (*tls.Config, error) {
	if err := ca.WritePEM(path); err != nil {
		return nil, fmt.Errorf("api CA: %w", err)
	}
	fmt.Fprintf(out, "%s %s (PEM in %s)%s\n", label, ca.Fingerprint(), path, hint)
	log.Info(label, "fingerprint", ca.Fingerprint(), "file", path)
	t.Cluster = func() (*tls.Config, error) {
		srv, err := pki.NewAPIServer(ca, hosts, nil)
		if err != nil {
			return nil, err
		}
		return srv.TLSConfig(), nil
	}
	return t.For(addr, log)
}

// CheckJoin checks that a node joining a cluster at join (empty: none)
// can verify it before it sends its token: an https:// member by the
// API CA fingerprint pinned (or by another trust, verified), an
// http:// one only on loopback or when insecure. It names the settings
// to set.
func CheckJoin(join, fingerprint string, insecure, verified bool) error {
	if fingerprint != "" {
		if _, err := pki.ParseFingerprint(fingerprint); err != nil {
			return fmt.Errorf("join_ca_fingerprint: %w", err)
		}
	}
	u, err := url.Parse(join)
	if join == "" || err != nil {
		return nil
	}
	switch {
	case u.Scheme == "https" && fingerprint == "" && !verified:
		return fmt.Errorf("join %q: set join_ca_fingerprint (-join-ca-fingerprint) to the cluster's API CA fingerprint "+
			"(every node prints it at start; GET /v1/ca): a joining node has no other way to verify the member it sends its token to", join)
	case u.Scheme == "http" && !HostIsLoopback(u.Hostname()) && !insecure:
		return fmt.Errorf("join %q: http:// sends the admin token in the clear; join the member's https:// URL "+
			"with join_ca_fingerprint, or set insecure_http (-insecure-http), for labs only", join)
	}
	return nil
}
