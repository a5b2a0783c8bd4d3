package bmc

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"time"
)

// Fingerprint is the fingerprint of a certificate (its DER bytes) as the
// appliance stores and shows it: "sha256:" and the 64 lowercase hex
// digits of the SHA-256 of the certificate, the digits that
// `openssl x509 -fingerprint -sha256` prints with colons.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// certCheck decides whether a Redfish BMC's certificate is trusted: the
// one whose fingerprint an operator accepted (pinned), or one that chains
// to the site's BMC CA (roots) and names the BMC's host. It remembers
// the fingerprint of a certificate it refused. One certCheck serves one
// attempt; its methods are safe for concurrent use.
type certCheck struct {
	host   string // the BMC's host, without brackets
	pinned string
	roots  *x509.CertPool

	mu      sync.Mutex
	refused string
}

// httpClient returns the HTTP client bmclib's Redfish provider is given:
// it verifies every TLS connection with c before anything is sent over
// it (the session request, which holds the password, included), and
// follows no redirect away from the BMC.
func (c *certCheck) httpClient() *http.Client {
	jar, _ := cookiejar.New(nil) // some BMCs keep a session cookie; never fails
	return &http.Client{
		Jar: jar,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				// Go's own verification would refuse every self-signed BMC;
				// VerifyConnection verifies instead, on every connection.
				InsecureSkipVerify: true,
				VerifyConnection:   c.verify,
				MinVersion:         tls.VersionTLS12,
			},
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 30 * time.Second,
			DisableKeepAlives:   true, // as bmclib's own client: BMCs keep few connections
		},
		CheckRedirect: sameBMC,
	}
}

// verify accepts the pinned certificate, or one the roots vouch for
// under the BMC's host name or address.
func (c *certCheck) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the BMC presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	fp := Fingerprint(leaf.Raw)
	if c.pinned != "" && strings.EqualFold(fp, c.pinned) {
		return nil
	}
	if c.roots != nil {
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.roots, Intermediates: inter, DNSName: c.host}); err == nil {
			return nil
		}
	}
	c.mu.Lock()
	c.refused = fp
	c.mu.Unlock()
	return fmt.Errorf("certificate %s is not trusted", fp)
}

// refusal is the failure of an attempt whose certificate verify refused,
// or nil if it refused none.
func (c *certCheck) refusal() error {
	c.mu.Lock()
	fp := c.refused
	c.mu.Unlock()
	if fp == "" {
		return nil
	}
	why := "no certificate is accepted for this BMC yet"
	if c.pinned != "" {
		why = "the certificate accepted for this BMC is " + c.pinned + ": the BMC's certificate changed"
	}
	if c.roots != nil {
		why += ", and the site's BMC CA does not vouch for it as " + c.host
	}
	return &kindError{kind: ErrCertificate, cert: fp,
		msg: fmt.Sprintf("the BMC presented certificate %s, which is not trusted (%s); the password was not sent", fp, why)}
}

// sameBMC follows a redirect only to the same BMC over HTTPS: a session
// request that is redirected carries the password with it.
func sameBMC(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	if req.URL.Scheme != "https" || req.URL.Host != via[0].URL.Host {
		return fmt.Errorf("refusing a redirect to %s://%s: the BMC's credentials stay with the BMC", req.URL.Scheme, req.URL.Host)
	}
	return nil
}
