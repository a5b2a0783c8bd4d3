package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority made for one test: it issues server
// certificates for the lab's peers (a Redfish BMC, central over HTTPS),
// and its certificate is what a client that should trust them is given.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	t    T
}

// NewCA makes a CA named name.
func NewCA(t T, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	return &CA{Cert: sign(t, tmpl, tmpl, key, key), key: key, t: t}
}

// Pool is a certificate pool holding the CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// WriteCert writes the CA's certificate (PEM) into the test's temporary
// directory and returns the file's path.
func (ca *CA) WriteCert() string {
	path := filepath.Join(ca.t.TempDir(), "ca.pem")
	writePEM(ca.t, path, "CERTIFICATE", ca.Cert.Raw, 0o644)
	return path
}

// Issue issues a server certificate for hosts (IP addresses or DNS
// names).
func (ca *CA) Issue(hosts ...string) tls.Certificate {
	ca.t.Helper()
	return issue(ca.t, ca.Cert, ca.key, hosts)
}

// SelfSigned is a server certificate for hosts that no CA vouches for, as
// a BMC makes for itself.
func SelfSigned(t T, hosts ...string) tls.Certificate {
	t.Helper()
	return issue(t, nil, nil, hosts)
}

// issue makes a certificate for hosts signed by parent (itself if nil).
func issue(t T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, hosts []string) tls.Certificate {
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	leaf := sign(t, tmpl, parent, key, parentKey)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// sign makes the certificate tmpl describes, for key, signed by parent's
// parentKey.
func sign(t T, tmpl, parent *x509.Certificate, key, parentKey *ecdsa.PrivateKey) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatalf("lab: certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("lab: certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	return cert
}

// WriteKeyPair writes cert and its key (PEM) into the test's temporary
// directory, for a program's -tls-cert and -tls-key, and returns their
// paths.
func WriteKeyPair(t T, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", cert.Certificate[0], 0o644)
	der, err := x509.MarshalECPrivateKey(cert.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatalf("lab: marshal key: %v", err)
	}
	writePEM(t, keyFile, "EC PRIVATE KEY", der, 0o600)
	return certFile, keyFile
}

func writePEM(t T, path, typ string, der []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatalf("lab: write %s: %v", path, err)
	}
}

func newKey(t T) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("lab: generate a key: %v", err)
	}
	return key
}

func serial(t T) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("lab: serial number: %v", err)
	}
	return n
}
