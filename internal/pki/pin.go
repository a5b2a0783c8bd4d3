package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrPinMismatch means a server's certificate does not chain to the
// pinned CA; the error wrapping it names both fingerprints.
var ErrPinMismatch = errors.New("pki: the server's certificate is not from the pinned CA")

// FormatFingerprint writes a hex SHA-256 fingerprint as operators see
// and pin it: "sha256:<hex>".
func FormatFingerprint(hexSum string) string { return "sha256:" + hexSum }

// PEMFingerprint is the fingerprint ("sha256:<hex>") of the first
// certificate in pemBytes, such as an api-ca.pem.
func PEMFingerprint(pemBytes []byte) (string, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "CERTIFICATE" {
		return "", errors.New("pki: no PEM certificate")
	}
	sum := sha256.Sum256(b.Bytes)
	return FormatFingerprint(hex.EncodeToString(sum[:])), nil
}

// ParseFingerprint reads a pinned CA fingerprint: "sha256:<hex>" or the
// bare hex, upper or lower case, with or without colons between bytes
// (as openssl prints it). It returns the lowercase hex.
func ParseFingerprint(s string) (string, error) {
	h := strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(strings.ToLower(h), "sha256:"); ok {
		h = rest
	}
	h = strings.ToLower(strings.ReplaceAll(h, ":", ""))
	if b, err := hex.DecodeString(h); err != nil || len(b) != 32 {
		return "", fmt.Errorf("pki: CA fingerprint %q: want sha256: and 64 hex digits", s)
	}
	return h, nil
}

// PinnedTLS is the TLS configuration of a client of an Outpost API whose
// CA is pinned: by its fingerprint (ParseFingerprint), by its
// certificate (caPEM, the api-ca.pem a node writes), or both, which must
// then agree. The server's chain is verified against the pinned CA alone,
// never the system's roots; a server whose chain does not lead to it is
// refused with an error that names the expected and presented CA
// fingerprints.
//
// The host name is not checked: the pinned CA signs only the cluster's
// own API servers, so any certificate it signed is one of them, and
// clients reach nodes through forwards, tunnels and names a node cannot
// put in its certificate. Clients that pin nothing (browsers, curl with
// --cacert) check names against the serving certificate's, which name
// the node's API hosts.
func PinnedTLS(fingerprint string, caPEM []byte) (*tls.Config, error) {
	pins, err := pinnedCAs(fingerprint, caPEM)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// VerifyConnection verifies the chain against the pinned CA
		// instead of the system's roots and a host name.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return pins.verify(cs.PeerCertificates, time.Now())
		},
	}, nil
}

// pins are the CAs a client accepts: the certificates of caPEM, or, for
// a fingerprint alone, whichever certificate the server presents with
// that fingerprint.
type pins struct {
	fingerprint string              // hex; "" with certificates only
	cas         []*x509.Certificate // from caPEM
}

func pinnedCAs(fingerprint string, caPEM []byte) (*pins, error) {
	p := &pins{}
	if fingerprint != "" {
		fp, err := ParseFingerprint(fingerprint)
		if err != nil {
			return nil, err
		}
		p.fingerprint = fp
	}
	for rest := caPEM; len(rest) > 0; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: CA file: %w", err)
		}
		if p.fingerprint == "" || CertFingerprint(c) == p.fingerprint {
			p.cas = append(p.cas, c)
		}
	}
	switch {
	case len(caPEM) > 0 && len(p.cas) == 0 && p.fingerprint != "":
		return nil, fmt.Errorf("pki: the CA file holds no certificate with the pinned fingerprint %s", FormatFingerprint(p.fingerprint))
	case len(caPEM) > 0 && len(p.cas) == 0:
		return nil, errors.New("pki: the CA file holds no PEM certificate")
	case p.fingerprint == "" && len(p.cas) == 0:
		return nil, errors.New("pki: pin a CA: give its fingerprint or its certificate")
	}
	return p, nil
}

// verify checks a server's chain (leaf first) against the pins.
func (p *pins) verify(chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return ErrNoCertificate
	}
	roots := x509.NewCertPool()
	for _, c := range p.cas {
		roots.AddCert(c)
	}
	if len(p.cas) == 0 {
		i := slices.IndexFunc(chain, func(c *x509.Certificate) bool { return CertFingerprint(c) == p.fingerprint })
		if i < 0 {
			return p.mismatch(chain, nil)
		}
		roots.AddCert(chain[i])
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return p.mismatch(chain, err)
	}
	return nil
}

// mismatch names what was expected and what the server presented: the
// fingerprint of the top of its chain (the CA, as Outpost's servers send
// it), and its issuer's name.
func (p *pins) mismatch(chain []*x509.Certificate, cause error) error {
	var want []string
	if p.fingerprint != "" {
		want = append(want, FormatFingerprint(p.fingerprint))
	} else {
		for _, c := range p.cas {
			want = append(want, FormatFingerprint(CertFingerprint(c)))
		}
	}
	top := chain[len(chain)-1]
	msg := fmt.Sprintf("%v: expected CA %s, the server presented %s (%q, issued by %q)", ErrPinMismatch,
		strings.Join(want, " or "), FormatFingerprint(CertFingerprint(top)), top.Subject.CommonName, top.Issuer.CommonName)
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return &pinError{msg: msg}
}

type pinError struct{ msg string }

func (e *pinError) Error() string        { return e.msg }
func (e *pinError) Is(target error) bool { return target == ErrPinMismatch }
