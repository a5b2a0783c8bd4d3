package store

import (
	"regexp"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Token is an API credential, "<id>.<secret>". Only the SHA-256 of its
// secret is stored; the token is shown once, when it is created.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	CreatedAt time.Time `json:"created_at"`
}

// NewToken makes a token named name and the record that stores its hash.
func NewToken(name string) (token string, rec *Token) {
	id, _ := NewSecret()
	id = strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(id))[:8]
	secret, hash := NewSecret()
	return id + "." + secret, &Token{ID: id, Name: name, Hash: hash}
}

// CreateToken stores a new token record.
func (d *DB) CreateToken(t *Token) error {
	t.CreatedAt = d.now().UTC()
	_, err := d.exec(cmdCreateToken, &createTokenPayload{Token: t})
	return err
}

// HasTokens reports whether any token exists.
func (d *DB) HasTokens() bool {
	n := 0
	_ = d.view(func(tx *bolt.Tx) error { n = tx.Bucket(bucketTokens).Stats().KeyN; return nil })
	return n > 0
}

var tokenIDRE = regexp.MustCompile(`^[a-z0-9]{1,63}$`)

// CheckToken reports whether token matches a stored token.
func (d *DB) CheckToken(token string) bool {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !tokenIDRE.MatchString(id) || secret == "" {
		return false
	}
	var rec *Token
	_ = d.view(func(tx *bolt.Tx) (err error) {
		rec, err = get[Token](tx.Bucket(bucketTokens), []byte(id))
		return err
	})
	if rec == nil {
		return false
	}
	return secretMatches(rec.Hash, secret)
}
