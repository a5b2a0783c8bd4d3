package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The files of a node's identity in its data directory.
const (
	// KeyFile holds the node's private key (PKCS #8 PEM), mode 0600.
	KeyFile = "node.key"
	// CertFile holds the node's certificate (PEM).
	CertFile = "node.crt"
)

// Identity is a node's key pair and its current certificate. TLS
// configurations built on it present whatever certificate it holds at
// the time of each handshake, so a renewed one takes effect at once.
type Identity struct {
	dir, id string
	kp      atomic.Pointer[keyPair] // replaced by CommitKey

	mu     sync.Mutex // serializes SetCertificate, Renew and CommitKey
	cert   atomic.Pointer[tls.Certificate]
	issuer atomic.Pointer[issuer] // SetIssuer
}

// keyPair is a node's private key and its public key's fingerprint.
type keyPair struct {
	key ed25519.PrivateKey
	fp  string
}

func newKeyPair(key ed25519.PrivateKey) (*keyPair, error) {
	fp, err := KeyFingerprint(key.Public())
	if err != nil {
		return nil, err
	}
	return &keyPair{key: key, fp: fp}, nil
}

// issuer renews the identity's certificate when it is due.
type issuer struct {
	ca    *CA
	hosts []string
}

// LoadIdentity loads node id's key pair from dir, making one at the first
// start, and its certificate if it has one that belongs to this key and
// node (otherwise it has none until SetCertificate or Renew).
func LoadIdentity(dir, id string) (*Identity, error) {
	if err := validLabel("node id", id); err != nil {
		return nil, err
	}
	key, err := loadOrCreateKey(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, err
	}
	kp, err := newKeyPair(key)
	if err != nil {
		return nil, err
	}
	i := &Identity{dir: dir, id: id}
	i.kp.Store(kp)
	raw, err := os.ReadFile(filepath.Join(dir, CertFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("pki: %w", err)
	default:
		if block, _ := pem.Decode(raw); block != nil {
			if c, err := i.parse(block.Bytes); err == nil {
				i.cert.Store(c)
			}
		}
	}
	return i, nil
}

// loadOrCreateKey reads the private key at path, or makes one and writes
// it there (0600) if there is none. A key others can read is refused.
func loadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadKey(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	return key, err
}

// loadKey reads the private key at path; a missing file is an error that
// wraps os.ErrNotExist.
func loadKey(path string) (ed25519.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("pki: %s is readable by others (mode %o): make it 0600", path, fi.Mode().Perm())
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("pki: %s holds no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s holds a %T, want an Ed25519 key", path, k)
	}
	return key, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate the node key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
		return nil, err
	}
	return key, nil
}

// writeFile writes data to path atomically, mode 0600.
func writeFile(path string, data []byte) error { return writeFileMode(path, data, 0o600) }

// writeFileMode writes data to path atomically, with mode.
func writeFileMode(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// NodeID is the node this identity is.
func (i *Identity) NodeID() string { return i.id }

// PublicKey is the node's public key.
func (i *Identity) PublicKey() ed25519.PublicKey { return i.kp.Load().key.Public().(ed25519.PublicKey) }

// PublicKeyDER is the node's public key as PKIX DER, as a joining node
// sends it.
func (i *Identity) PublicKeyDER() []byte {
	der, _ := x509.MarshalPKIXPublicKey(i.PublicKey()) // an Ed25519 key always marshals
	return der
}

// Fingerprint is the fingerprint of the node's public key
// (KeyFingerprint), what its member record pins.
func (i *Identity) Fingerprint() string { return i.kp.Load().fp }

// Certificate is the node's current certificate, or nil if it has none
// yet.
func (i *Identity) Certificate() *x509.Certificate {
	if c := i.cert.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// SetCertificate makes der, a certificate for this node's key and id,
// the node's certificate, and saves it.
func (i *Identity) SetCertificate(der []byte) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, err := i.parse(der)
	if err != nil {
		return err
	}
	return i.setLocked(c, der)
}

func (i *Identity) setLocked(c *tls.Certificate, der []byte) error {
	if err := writeFile(filepath.Join(i.dir, CertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		return err
	}
	i.cert.Store(c)
	return nil
}

// parse checks that der is a certificate of this node's key naming this
// node.
func (i *Identity) parse(der []byte) (*tls.Certificate, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: node certificate: %w", err)
	}
	kp := i.kp.Load()
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, kp.key.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("pki: the certificate for %s is not for this node's key", cert.Subject.CommonName)
	}
	if !slices.ContainsFunc(cert.URIs, func(u *url.URL) bool { return u.Scheme == uriScheme && u.Path == "/node/"+i.id }) {
		return nil, fmt.Errorf("pki: the certificate does not name node %s", i.id)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: kp.key, Leaf: cert}, nil
}

// Renew issues the node a new certificate from ca if it has none, or one
// ca did not sign, or one with less than a third of its validity left at
// now, or one that does not name every host in hosts. It reports whether
// it issued one.
func (i *Identity) Renew(ca *CA, hosts []string, now time.Time) (bool, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.renewLocked(ca, hosts, now)
}

func (i *Identity) renewLocked(ca *CA, hosts []string, now time.Time) (bool, error) {
	if cur := i.Certificate(); cur != nil && cur.CheckSignatureFrom(ca.Certificate()) == nil &&
		!renewalDue(cur, now) && names(cur, hosts) {
		return false, nil
	}
	der, err := ca.Issue(i.id, i.PublicKey(), hosts, now)
	if err != nil {
		return false, err
	}
	c, err := i.parse(der)
	if err != nil {
		return false, err
	}
	return true, i.setLocked(c, der)
}

// renewalDue reports whether cert has less than a third of its validity
// left at now.
func renewalDue(cert *x509.Certificate, now time.Time) bool {
	return !now.Before(cert.NotAfter.Add(-NodeValidity / 3))
}

// SetIssuer makes ca the issuer of the node's certificates, naming hosts:
// the certificate is renewed now if Renew says so, and again whenever a
// handshake finds it due, so a node that runs for years keeps a valid
// one. Every member holds its cluster's CA (see the package doc).
func (i *Identity) SetIssuer(ca *CA, hosts []string) error {
	i.issuer.Store(&issuer{ca: ca, hosts: hosts})
	_, err := i.Renew(ca, hosts, time.Now())
	return err
}

// names reports whether cert names every host of hosts.
func names(cert *x509.Certificate, hosts []string) bool {
	dns, ips := splitHosts(hosts)
	for _, d := range dns {
		if !slices.Contains(cert.DNSNames, d) {
			return false
		}
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// tlsCertificate is what a handshake presents.
func (i *Identity) tlsCertificate() (*tls.Certificate, error) {
	c := i.cert.Load()
	if is := i.issuer.Load(); is != nil && (c == nil || renewalDue(c.Leaf, time.Now())) {
		if _, err := i.Renew(is.ca, is.hosts, time.Now()); err != nil {
			return nil, err
		}
		c = i.cert.Load()
	}
	if c == nil {
		return nil, fmt.Errorf("pki: node %s has no certificate yet", i.id)
	}
	return c, nil
}

// String names the identity in logs: the node and its key's fingerprint.
func (i *Identity) String() string {
	return fmt.Sprintf("%s (key %s)", i.id, i.Fingerprint()[:16])
}
