package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"
)

// APIKeyPurpose labels the secret a cluster derives its API CA from:
// callers pass seal.Key.Derive(APIKeyPurpose) of the cluster's key to
// DeriveAPICA. It differs from KeyPurpose, so the two CAs share nothing.
const APIKeyPurpose = "outpost api ca v1"

// ServingValidity is how long an API serving certificate is valid; an
// APIServer renews its own once a third of it is left.
const ServingValidity = 90 * 24 * time.Hour

// LoopbackHosts are named by every serving certificate: a client that
// reaches a node through a forward on its own machine (the demo, an SSH
// tunnel) verifies it too.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// APICA is one generation of a cluster's API certificate authority: the
// CA browsers, the CLI and the cluster's own nodes verify its HTTPS API
// by. Its key is ECDSA P-256, which every TLS client accepts (Chromium
// refuses Ed25519, the Raft CA's).
type APICA struct {
	cluster    string
	generation uint64
	key        *ecdsa.PrivateKey
	cert       *x509.Certificate
}

// DeriveAPICA returns the API CA of a cluster ("site", "central") of the
// given generation, derived from secret (at least 32 bytes: the cluster
// key's Derive(APIKeyPurpose)). Every member computes the same
// certificate, byte for byte: the key comes from HKDF, the serial too,
// and the signature is RFC 6979's deterministic ECDSA.
func DeriveAPICA(secret []byte, cluster string, generation uint64) (*APICA, error) {
	if err := checkCAInput(secret, cluster); err != nil {
		return nil, err
	}
	key, serial, err := deriveP256(secret, cluster, generation)
	if err != nil {
		return nil, err
	}
	cert, err := selfSign(caTemplate(serial, cluster, "API CA", "api-ca", generation), deterministic{key})
	if err != nil {
		return nil, err
	}
	return &APICA{cluster: cluster, generation: generation, key: key, cert: cert}, nil
}

// deriveP256 derives a P-256 key and a serial number from secret: the
// first HKDF output, with a counter, that is a valid scalar (all but a
// 2^-32 fraction are).
func deriveP256(secret []byte, cluster string, generation uint64) (*ecdsa.PrivateKey, *big.Int, error) {
	info := binary.BigEndian.AppendUint64([]byte(APIKeyPurpose+"\x00"+cluster+"\x00"), generation)
	for counter := byte(0); counter < 16; counter++ {
		material, err := hkdf.Key(sha256.New, secret, nil, string(append(info, counter)), 32+16)
		if err != nil {
			return nil, nil, fmt.Errorf("pki: derive the API CA key: %w", err)
		}
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), material[:32])
		if err != nil {
			continue // not below the curve's order: the next one
		}
		serial := new(big.Int).SetBytes(material[32:])
		return key, serial.Add(serial, big.NewInt(1)), nil
	}
	return nil, nil, fmt.Errorf("pki: derive the API CA key: no valid scalar")
}

// deterministic signs with RFC 6979 (a nil random source), so that the
// same certificate template and key always give the same signature.
type deterministic struct{ key *ecdsa.PrivateKey }

func (d deterministic) Public() crypto.PublicKey { return d.key.Public() }

func (d deterministic) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return d.key.Sign(nil, digest, opts)
}

// Certificate is the CA's certificate.
func (ca *APICA) Certificate() *x509.Certificate { return ca.cert }

// CertificatePEM is the CA's certificate in PEM, for operators, browsers
// and clients to trust.
func (ca *APICA) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// WritePEM writes the CA's certificate to path (mode 0644: it is public,
// for clients to trust), whole or not at all.
func (ca *APICA) WritePEM(path string) error { return writeFileMode(path, ca.CertificatePEM(), 0o644) }

// Fingerprint is the CA's, as operators pin it: "sha256:" and the hex
// SHA-256 of its certificate's DER.
func (ca *APICA) Fingerprint() string { return FormatFingerprint(CertFingerprint(ca.cert)) }

// Pool is a pool holding the CA alone, for the cluster's own clients of
// its API (a follower dialing its leader's).
func (ca *APICA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// IssueServing makes a new P-256 key and a serving certificate for hosts
// (IP addresses or DNS names, or the host of a host:port or URL), valid
// from now for ServingValidity, and returns it with the CA as its chain:
// a client that pins the CA's fingerprint finds it there.
func (ca *APICA) IssueServing(hosts []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: serving key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{Organization: []string{"Outpost"}, CommonName: "Outpost " + ca.cluster + " API"},
		NotBefore:    now.Add(-time.Hour), // a client's clock a little behind
		NotAfter:     now.Add(ServingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	tmpl.DNSNames, tmpl.IPAddresses = splitHosts(append(append([]string(nil), hosts...), LoopbackHosts...))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue a serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse the serving certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// APIServer is a node's HTTPS identity for its API: a serving
// certificate from the API CA for the node's API hosts, made at start
// (its key never leaves memory) and renewed at a handshake once a third
// of its validity is left.
type APIServer struct {
	ca    *APICA
	hosts []string
	now   func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate
}

// NewAPIServer issues the first serving certificate for hosts. now is
// the clock (nil: time.Now).
func NewAPIServer(ca *APICA, hosts []string, now func() time.Time) (*APIServer, error) {
	if now == nil {
		now = time.Now
	}
	s := &APIServer{ca: ca, hosts: hosts, now: now}
	if _, err := s.certificate(); err != nil {
		return nil, err
	}
	return s, nil
}

// certificate is the current serving certificate, renewed first if due.
func (s *APIServer) certificate() (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && s.cert.Leaf.NotAfter.Sub(now) > ServingValidity/3 {
		return s.cert, nil
	}
	c, err := s.ca.IssueServing(s.hosts, now)
	if err != nil {
		if s.cert != nil && now.Before(s.cert.Leaf.NotAfter) {
			return s.cert, nil // still valid: try again at the next handshake
		}
		return nil, err
	}
	s.cert = c
	return c, nil
}

// TLSConfig is the API's server configuration: TLS 1.2 or later, the
// current serving certificate at every handshake.
func (s *APIServer) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.certificate() },
	}
}
