package provision

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Credential kinds: the token's first byte.
const (
	kindWorkflow  = 'w'
	kindDiscovery = 'd'
)

// sigLen is the length of a token's signature in base64url characters.
const sigLen = 43 // 32 bytes

// Credentials mints and checks agent credentials under one key.
type Credentials struct {
	key []byte
}

// NewCredentials returns credentials under key, a secret derived from the
// site key for this purpose alone.
func NewCredentials(key []byte) *Credentials {
	return &Credentials{key: key}
}

// Workflow returns w's credential: "w<signature>.<workflow id>".
func (c *Credentials) Workflow(w *store.Workflow) string {
	return string(kindWorkflow) + c.sign("workflow", w.ID, w.Nonce) + "." + w.ID
}

// Discovery returns the discovery credential for mac (in canonical form):
// "d<signature>.<mac without colons>".
func (c *Credentials) Discovery(mac string) string {
	hex := strings.ReplaceAll(mac, ":", "")
	return string(kindDiscovery) + c.sign("discovery", hex) + "." + hex
}

func (c *Credentials) sign(parts ...string) string {
	m := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// errCredential is every credential failure, deliberately unspecific.
var errCredential = errors.New("the credential is missing, malformed or wrong")

// token is a parsed, not yet verified credential.
type token struct {
	kind    byte
	sig     string
	subject string // a workflow id, or a MAC's 12 hex digits
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

// verifyDiscovery checks t as a discovery credential and returns its MAC
// in canonical form.
func (c *Credentials) verifyDiscovery(t token) (string, bool) {
	if t.kind != kindDiscovery || len(t.subject) != 12 || !hmac.Equal([]byte(t.sig), []byte(c.sign("discovery", t.subject))) {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(t.subject[i : i+2])
	}
	return b.String(), true
}
