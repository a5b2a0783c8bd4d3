package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// Verifier decides whether a peer whose certificate chains to the CA may
// connect: typically, that it is a current member of the cluster and
// that its key's fingerprint is the one its member record holds. A
// non-nil error refuses the handshake.
type Verifier func(Peer) error

// ServerConfig is the TLS 1.3 configuration of a node accepting
// connections from its peers: it presents the identity's certificate and
// requires the client's, which must pass trust and verify. protos are the
// ALPN protocols it speaks.
func ServerConfig(id *Identity, trust *Trust, verify Verifier, protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.tlsCertificate()
		},
		// The chain is verified in VerifyConnection, with the node's
		// identity, rather than by RequireAndVerifyClientCert, so that both
		// directions share one check.
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: verifyPeer(trust, x509.ExtKeyUsageClientAuth, verify),
		NextProtos:       protos,
	}
}

// ClientConfig is the TLS 1.3 configuration of a node dialing a peer by
// address: it presents the identity's certificate and verifies the
// server's against trust and verify, not against a host name.
func ClientConfig(id *Identity, trust *Trust, verify Verifier, protos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.tlsCertificate()
		},
		// Peers are dialed by address and identified by the node id their
		// certificate names: VerifyConnection checks the chain and the
		// identity instead of a host name.
		InsecureSkipVerify: true,
		VerifyConnection:   verifyPeer(trust, x509.ExtKeyUsageServerAuth, verify),
		NextProtos:         protos,
	}
}

func verifyPeer(trust *Trust, usage x509.ExtKeyUsage, verify Verifier) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		p, err := trust.Verify(cs.PeerCertificates, usage, time.Now())
		if err != nil {
			return err
		}
		if verify != nil {
			if err := verify(p); err != nil {
				return fmt.Errorf("pki: node %s refused: %w", p.ID, err)
			}
		}
		return nil
	}
}

// PeerOf returns the client of a connection this node accepted, such as
// an HTTP request's r.TLS, verified again against trust now.
func PeerOf(trust *Trust, cs *tls.ConnectionState) (Peer, error) {
	if cs == nil {
		return Peer{}, ErrNoCertificate
	}
	return trust.Verify(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now())
}
