package provision

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Credential kinds: the token's first byte.
const (
	kindWorkflow  = 'w'
	kindDiscovery = 'd'
)

// sigLen is the length of a token's signature in base64url characters.
const sigLen = 43 // 32 bytes

// nonceLen is the length of a discovery credential's nonce in hex digits.
const nonceLen = 16 // 8 random bytes

// Credentials mints and checks agent credentials under one key.
type Credentials struct {
	key []byte
	// nonce fills a discovery credential's nonce: crypto/rand, but in
	// tests that need the same credentials from one run to the next.
	nonce func(b []byte)
}

// NewCredentials returns credentials under key, a secret derived from the
// site key for this purpose alone.
func NewCredentials(key []byte) *Credentials {
	return &Credentials{key: key, nonce: func(b []byte) { rand.Read(b) }}
}

// Workflow returns w's credential: "w<signature>.<workflow id>", signed
// over the id and the workflow's nonce.
func (c *Credentials) Workflow(w *store.Workflow) string {
	return string(kindWorkflow) + c.sign("workflow", w.ID, w.Nonce) + "." + w.ID
}

// Discovery returns a discovery credential for mac (in canonical form),
// given to addr, that expires at exp:
//
//	d<signature>.<mac: 12 hex digits>.<addr: 8 or 32 hex digits>.<expiry: Unix seconds>.<nonce: 16 hex digits>
//
// signed over everything after the first dot. The nonce makes every
// credential minted distinct, so that one can be named (its nonce is no
// secret) without being given away.
func (c *Credentials) Discovery(mac string, addr netip.Addr, exp time.Time) string {
	var nonce [nonceLen / 2]byte
	c.nonce(nonce[:])
	subject := strings.Join([]string{
		strings.ReplaceAll(mac, ":", ""),
		hex.EncodeToString(addr.Unmap().AsSlice()),
		strconv.FormatInt(exp.Unix(), 10),
		hex.EncodeToString(nonce[:]),
	}, ".")
	return string(kindDiscovery) + c.sign("discovery v2", subject) + "." + subject
}

func (c *Credentials) sign(parts ...string) string {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var (
	// errCredential is every failure to verify a credential,
	// deliberately unspecific.
	errCredential = errors.New("the credential is missing, malformed or wrong")
	// errOldDiscovery is a discovery credential of the format before
	// nonces and expiry (an HMAC of the MAC alone), which opens nothing.
	errOldDiscovery = errors.New("the discovery credential is of an earlier release and opens nothing any more: reboot the machine for a new one")
)

// token is a parsed, not yet verified credential.
type token struct {
	kind    byte
	sig     string
	subject string // a workflow id, or a discovery credential's fields
}

func parseToken(s string) (token, error) {
	if len(s) < 1+sigLen+2 || s[1+sigLen] != '.' || (s[0] != kindWorkflow && s[0] != kindDiscovery) {
		return token{}, errCredential
	}
	return token{kind: s[0], sig: s[1 : 1+sigLen], subject: s[2+sigLen:]}, nil
}

// verifyWorkflow checks t against workflow w.
func (c *Credentials) verifyWorkflow(t token, w *store.Workflow) bool {
	return t.kind == kindWorkflow && t.subject == w.ID &&
		hmac.Equal([]byte(t.sig), []byte(c.sign("workflow", w.ID, w.Nonce)))
}

// discovery is a verified discovery credential.
type discovery struct {
	mac     string // canonical form
	addr    netip.Addr
	expires time.Time
	nonce   string
}

// verifyDiscovery checks t as a discovery credential and returns what it
// says; whether it has expired, and whether the request comes from its
// address, is the caller's to check.
func (c *Credentials) verifyDiscovery(t token) (discovery, error) {
	if t.kind != kindDiscovery {
		return discovery{}, errCredential
	}
	if !hmac.Equal([]byte(t.sig), []byte(c.sign("discovery v2", t.subject))) {
		if len(t.subject) == 12 && isLowerHex(t.subject) && hmac.Equal([]byte(t.sig), []byte(c.sign("discovery", t.subject))) {
			return discovery{}, errOldDiscovery
		}
		return discovery{}, errCredential
	}
	return parseDiscovery(t.subject)
}

// parseDiscovery reads a discovery credential's signed fields.
func parseDiscovery(subject string) (discovery, error) {
	f := strings.Split(subject, ".")
	if len(f) != 4 || len(f[0]) != 12 || !isLowerHex(f[0]) || len(f[3]) != nonceLen || !isLowerHex(f[3]) {
		return discovery{}, errCredential
	}
	raw, err := hex.DecodeString(f[1])
	addr, ok := netip.AddrFromSlice(raw)
	exp, perr := strconv.ParseInt(f[2], 10, 64)
	if err != nil || !ok || perr != nil {
		return discovery{}, errCredential
	}
	var mac strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			mac.WriteByte(':')
		}
		mac.WriteString(f[0][i : i+2])
	}
	return discovery{mac: mac.String(), addr: addr, expires: time.Unix(exp, 0), nonce: f[3]}, nil
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
