package app

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/seal"
)

// The API's HTTPS (see httpserve.TLS and internal/pki's API CA): every
// node derives the site's API CA from the site key, writes its PEM to
// the data directory, prints its fingerprint, and serves its API on a
// non-loopback address with its own certificate from it.

// apiTLS derives the site's API CA, publishes it (the PEM file, a line
// on out, a log line) and returns it with the TLS configuration the API
// listener ln serves with (nil: plain HTTP).
func apiTLS(cfg *config.Config, key *seal.Key, ln net.Listener, log *slog.Logger, out io.Writer) (*pki.APICA, *tls.Config, error) {
	ca, err := cluster.SiteAPICA(key)
	if err != nil {
		return nil, nil, err
	}
	t := httpserve.TLS{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, Insecure: cfg.InsecureHTTP, InsecureFlag: "insecure_http (-insecure-http)"}
	tc, err := t.Publish(ca, cfg.APICAPath(), "site API CA", ": pin it with outpost --ca-fingerprint "+ca.Fingerprint(),
		apiHosts(cfg, ln.Addr()), ln.Addr(), log, out)
	return ca, tc, err
}

// apiHosts are the names the API's certificate names: the API URL's
// host, the listener's address (every interface's for a wildcard) and
// api_hosts.
func apiHosts(cfg *config.Config, addr net.Addr) []string {
	hosts := append([]string{cfg.APIURL}, cfg.APIHosts...)
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return append(hosts, addr.String())
	}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		if ipn, ok := a.(*net.IPNet); ok {
			hosts = append(hosts, ipn.IP.String())
		}
	}
	return hosts
}

// leaderClient is the client a follower dials its leader's API with (the
// serial console's proxy): it verifies the leader by the site's API CA,
// which every node derives, or, where the operator's certificate is
// served, by the system's roots and that certificate's file.
func leaderClient(cfg *config.Config, ca *pki.APICA) (*http.Client, error) {
	tc, err := pki.PinnedTLS(ca.Fingerprint(), nil)
	if err != nil {
		return nil, err
	}
	if cfg.TLSCert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(cfg.TLSCert); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		tc = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}, nil
}
