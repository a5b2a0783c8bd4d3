package store

import (
	"regexp"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/access"
)

// Token is an API credential, "<id>.<secret>". Only the SHA-256 of its
// secret is stored; the token is shown once, when it is created. Its
// Grant is its role and expiry: a token of a release before roles has
// none, and is an admin's (access.Grant.Effective).
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
	access.Grant
}

// NewToken makes an admin token named name (central's first) and the
// record that stores its hash.
func NewToken(name string) (token string, rec *Token) {
	return NewTokenWith(name, access.Grant{Role: access.Admin})
}

// NewTokenWith makes a token named name with grant g and the record that
// stores its hash.
func NewTokenWith(name string, g access.Grant) (token string, rec *Token) {
	id, _ := NewSecret()
	id = strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(id))[:8]
	secret, hash := NewSecret()
	return id + "." + secret, &Token{ID: id, Name: name, Hash: hash, Grant: g}
}

// CreateToken stores a new token record, which must have a name and a
// role.
func (d *DB) CreateToken(t *Token) error {
	t.CreatedAt = d.now().UTC()
	_, err := d.exec(cmdCreateToken, &createTokenPayload{Token: t})
	return err
}

// DeleteToken deletes the token id.
func (d *DB) DeleteToken(id string) error {
	_, err := d.exec(cmdDeleteToken, &deleteTokenPayload{ID: id})
	return err
}

// Tokens returns every token record, in id order.
func (d *DB) Tokens() ([]*Token, error) {
	out := []*Token{}
	err := d.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, _ []byte) error {
			t, err := get[Token](tx.Bucket(bucketTokens), k)
			if t != nil {
				out = append(out, t)
			}
			return err
		})
	})
	return out, err
}

// HasTokens reports whether any token exists.
func (d *DB) HasTokens() bool {
	n := 0
	_ = d.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketTokens).Stats().KeyN; return nil })
	return n > 0
}

var tokenIDRE = regexp.MustCompile(`^[a-z0-9]{1,63}$`)

// LookupToken finds the record token matches: its name and grant (whose
// expiry the caller checks). ok is false if none does.
func (d *DB) LookupToken(token string) (name string, g access.Grant, ok bool) {
	id, secret, found := strings.Cut(token, ".")
	if !found || !tokenIDRE.MatchString(id) || secret == "" {
		return "", access.Grant{}, false
	}
	var rec *Token
	_ = d.view(func(tx *bolt.Tx) (err error) {
		rec, err = get[Token](tx.Bucket(bucketTokens), []byte(id))
		return err
	})
	if rec == nil || !secretMatches(rec.Hash, secret) {
		return "", access.Grant{}, false
	}
	return rec.Name, rec.Grant, true
}
