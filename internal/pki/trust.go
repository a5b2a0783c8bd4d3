package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// Errors of Verify; each is wrapped with the detail.
var (
	// ErrNoCertificate means the peer presented no certificate.
	ErrNoCertificate = errors.New("pki: the peer presented no certificate")
	// ErrUnknownCA means the certificate is not signed by a CA this node
	// trusts (another cluster's, or none).
	ErrUnknownCA = errors.New("pki: the certificate is not signed by this cluster's CA")
	// ErrExpired means the certificate is not valid at this time.
	ErrExpired = errors.New("pki: the certificate is expired or not yet valid")
	// ErrNotNode means the certificate names no node of this cluster.
	ErrNotNode = errors.New("pki: the certificate names no node of this cluster")
)

// Peer is a node whose certificate chains to the cluster's CA.
type Peer struct {
	// ID is the node id the certificate names.
	ID string
	// Fingerprint is its public key's (KeyFingerprint).
	Fingerprint string
	// Certificate is the peer's certificate.
	Certificate *x509.Certificate
}

// Trust is the set of CA certificates of one cluster that a node accepts:
// one generation, or two during a rotation. It is safe for concurrent use
// and can be replaced while connections are verified against it.
type Trust struct {
	cluster string
	set     atomic.Pointer[trustSet]
}

type trustSet struct {
	pool *x509.CertPool
	cas  []*x509.Certificate
}

// NewTrust trusts cas (none yet: every peer is refused) for cluster.
func NewTrust(cluster string, cas ...*x509.Certificate) *Trust {
	t := &Trust{cluster: cluster}
	t.Replace(cas...)
	return t
}

// Replace makes cas the trusted CA certificates.
func (t *Trust) Replace(cas ...*x509.Certificate) {
	s := &trustSet{pool: x509.NewCertPool(), cas: append([]*x509.Certificate(nil), cas...)}
	for _, c := range cas {
		s.pool.AddCert(c)
	}
	t.set.Store(s)
}

// Cluster is the cluster whose nodes the trust accepts.
func (t *Trust) Cluster() string { return t.cluster }

// CAs are the trusted CA certificates.
func (t *Trust) CAs() []*x509.Certificate {
	return append([]*x509.Certificate(nil), t.set.Load().cas...)
}

// Verify checks a peer's certificate chain (leaf first, as TLS delivers
// it) for use (x509.ExtKeyUsageServerAuth or ClientAuth) at now: it must
// be signed by a trusted CA, valid, and name exactly one node of the
// cluster. Intermediates are not accepted: a CA signs nodes directly.
func (t *Trust) Verify(chain []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) (Peer, error) {
	if len(chain) == 0 {
		return Peer{}, ErrNoCertificate
	}
	leaf := chain[0]
	_, err := leaf.Verify(x509.VerifyOptions{Roots: t.set.Load().pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		var invalid x509.CertificateInvalidError
		if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
			return Peer{}, fmt.Errorf("%w: %v", ErrExpired, err)
		}
		return Peer{}, fmt.Errorf("%w: %s: %v", ErrUnknownCA, leaf.Subject.CommonName, err)
	}
	id, err := t.nodeID(leaf)
	if err != nil {
		return Peer{}, err
	}
	fp, err := KeyFingerprint(leaf.PublicKey)
	if err != nil {
		return Peer{}, err
	}
	return Peer{ID: id, Fingerprint: fp, Certificate: leaf}, nil
}

// nodeID is the node a certificate names: its one URI SAN of the form
// outpost://<cluster>/node/<id>.
func (t *Trust) nodeID(cert *x509.Certificate) (string, error) {
	id := ""
	for _, u := range cert.URIs {
		if u.Scheme != uriScheme {
			continue
		}
		rest, ok := strings.CutPrefix(u.Path, "/node/")
		if !ok || u.Host != t.cluster || validLabel("node id", rest) != nil || id != "" {
			return "", fmt.Errorf("%w: %s (cluster %q)", ErrNotNode, u, t.cluster)
		}
		id = rest
	}
	if id == "" {
		return "", fmt.Errorf("%w: no %s://%s/node/ URI", ErrNotNode, uriScheme, t.cluster)
	}
	return id, nil
}
