package cli

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
)

// centralHTTP is the HTTP client the central client sends through: the
// system's roots, or the CA the options pin (--ca-fingerprint, --ca-file:
// pki.PinnedTLS, as for a site). A token crosses the network only over
// TLS: plain http:// is refused but on loopback.
func (o *options) centralHTTP(rawURL string) (*http.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("central URL: %w", err)
	}
	pin := client.Pin{Fingerprint: o.caFingerprint, CAFile: o.caFile}
	switch {
	case u.Scheme == "http" && pin != (client.Pin{}):
		return nil, fmt.Errorf("central URL %s: a CA pin needs an https:// URL", rawURL)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("central URL %s: a token crosses the network only over TLS: use https:// (plain http is for loopback)", rawURL)
	case u.Scheme == "http" || pin == (client.Pin{}):
		return &http.Client{Timeout: 60 * time.Second}, nil
	}
	tr, err := client.PinnedTransport(pin)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 60 * time.Second, Transport: tr}, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
