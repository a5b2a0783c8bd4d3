package pki

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"time"
)

// KeyPurpose labels the secret a cluster derives its CA from: callers
// pass seal.Key.Derive(KeyPurpose) of the cluster's key to DeriveCA.
const KeyPurpose = "outpost cluster ca v1"

// Generation is the CA generation every cluster starts at (see the
// package doc on rotation, and Initial).
const Generation = 1

// NodeValidity is how long a node certificate is valid. Members renew
// theirs (Identity.Renew) once a third of it is left.
const NodeValidity = 365 * 24 * time.Hour

// The CA certificate's validity is fixed, so that every member builds the
// same certificate.
var (
	caNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

// CA is one generation of a cluster's certificate authority.
type CA struct {
	cluster    string
	generation uint64
	key        ed25519.PrivateKey
	cert       *x509.Certificate
}

// DeriveCA returns the CA of a cluster ("site", "central") of the given
// generation, derived from secret (at least 32 bytes: the cluster key's
// Derive(KeyPurpose)).
func DeriveCA(secret []byte, cluster string, generation uint64) (*CA, error) {
	if err := checkCAInput(secret, cluster); err != nil {
		return nil, err
	}
	info := binary.BigEndian.AppendUint64([]byte(KeyPurpose+"\x00"+cluster+"\x00"), generation)
	material, err := hkdf.Key(sha256.New, secret, nil, string(info), ed25519.SeedSize+16)
	if err != nil {
		return nil, fmt.Errorf("pki: derive the CA key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(material[:ed25519.SeedSize])
	serial := new(big.Int).SetBytes(material[ed25519.SeedSize:])
	// Ed25519 signatures are deterministic: the same template and key
	// give the same certificate on every member.
	cert, err := selfSign(caTemplate(serial.Add(serial, big.NewInt(1)), cluster, "CA", "ca", generation), key) // serial never 0
	if err != nil {
		return nil, err
	}
	return &CA{cluster: cluster, generation: generation, key: key, cert: cert}, nil
}

// checkCAInput checks what a CA is derived from.
func checkCAInput(secret []byte, cluster string) error {
	if len(secret) < 32 {
		return fmt.Errorf("pki: the CA secret has %d bytes, want at least 32", len(secret))
	}
	return validLabel("cluster", cluster)
}

// selfSign makes and parses the CA certificate tmpl signed by key.
func selfSign(tmpl *x509.Certificate, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("pki: make the %s certificate: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse the %s certificate: %w", tmpl.Subject.CommonName, err)
	}
	return cert, nil
}

// caTemplate is the certificate of a cluster's CA of kind ("CA", "API
// CA"): fixed fields only, so that every member builds the same one.
func caTemplate(serial *big.Int, cluster, kind, path string, generation uint64) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Outpost"}, CommonName: fmt.Sprintf("Outpost %s %s, generation %d", cluster, kind, generation)},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{{Scheme: uriScheme, Host: cluster, Path: fmt.Sprintf("/%s/%d", path, generation)}},
	}
}

// Cluster is the name of the CA's cluster.
func (ca *CA) Cluster() string { return ca.cluster }

// Generation is the CA's generation.
func (ca *CA) Generation() uint64 { return ca.generation }

// Certificate is the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertificatePEM is the CA's certificate in PEM, for operators and
// clients to trust.
func (ca *CA) CertificatePEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Fingerprint is the hex SHA-256 of the CA's certificate: the same on
// every member, printed for operators to pin.
func (ca *CA) Fingerprint() string { return CertFingerprint(ca.cert) }

// Issue signs a certificate for node id with public key pub (Ed25519),
// valid from now for NodeValidity, for both server and client use, naming
// hosts (IP addresses or DNS names, or the host of a host:port or of a
// URL, such as the node's Raft address and API URL) as well as the node.
// It returns the certificate's DER.
func (ca *CA) Issue(id string, pub crypto.PublicKey, hosts []string, now time.Time) ([]byte, error) {
	if err := validLabel("node id", id); err != nil {
		return nil, err
	}
	if _, ok := pub.(ed25519.PublicKey); !ok {
		return nil, fmt.Errorf("pki: node %s: the public key is a %T, want Ed25519", id, pub)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{Organization: []string{"Outpost"}, CommonName: id},
		NotBefore:    now.Add(-time.Hour), // a peer's clock a little behind
		NotAfter:     now.Add(NodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{NodeURI(ca.cluster, id)},
	}
	tmpl.DNSNames, tmpl.IPAddresses = splitHosts(hosts)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: issue a certificate for %s: %w", id, err)
	}
	return der, nil
}

// splitHosts sorts hosts into DNS names and IP addresses, taking the host
// of a URL or of a host:port and dropping empty entries and duplicates.
func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	seen := map[string]bool{}
	for _, h := range hosts {
		if u, err := url.Parse(h); err == nil && u.Scheme != "" && u.Host != "" {
			h = u.Host
		}
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// uriScheme is the scheme of the URIs that name CAs and nodes.
const uriScheme = "outpost"

// NodeURI is the URI a node certificate names its node by:
// outpost://<cluster>/node/<id>.
func NodeURI(cluster, id string) *url.URL {
	return &url.URL{Scheme: uriScheme, Host: cluster, Path: "/node/" + id}
}

// validLabel accepts the cluster names and node ids a URI carries as they
// are: letters, digits, '.', '_' and '-', 1 to 63 of them.
func validLabel(what, s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("pki: %s %q must be 1 to 63 characters", what, s)
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("pki: %s %q may hold only letters, digits, '.', '_' and '-'", what, s)
		}
	}
	return nil
}

// KeyFingerprint is the lowercase hex SHA-256 of pub's DER
// SubjectPublicKeyInfo: what a member record pins.
func KeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("pki: fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// CertFingerprint is the lowercase hex SHA-256 of a certificate's DER.
func CertFingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// ParsePublicKey parses a PKIX (SubjectPublicKeyInfo) DER public key, as
// a joining node sends it; only Ed25519 keys are node keys.
func ParsePublicKey(der []byte) (ed25519.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("pki: public key: %w", err)
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("pki: public key: not an Ed25519 key")
	}
	return k, nil
}
