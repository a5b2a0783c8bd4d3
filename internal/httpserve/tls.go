package httpserve

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
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
