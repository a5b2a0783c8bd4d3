package store

import (
	"encoding/hex"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
)

// Token is an API credential. Only the SHA-256 of its secret part is
// stored; the secret is shown once, when the token is created. Its Grant
// is its role and expiry: a record of release b482c18 or earlier has
// none, and is an admin token (access.Grant.Effective).
type Token struct {
	Meta
	ID   string `json:"id"`
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the token's secret.
	Hash string `json:"hash"`
	access.Grant
}

func (*Token) Kind() string   { return "token" }
func (t *Token) Key() string  { return t.ID }
func (*Token) bucket() []byte { return bucketTokens }

// Validate checks the token record. A role, if it has one, must be a
// role; a new token must have one (ValidateNew).
func (t *Token) Validate() error {
	if err := validName("id", t.ID); err != nil {
		return err
	}
	if b, err := hex.DecodeString(t.Hash); err != nil || len(b) != 32 {
		return errs.Invalid("hash", "must be a hex SHA-256")
	}
	if t.Role != "" {
		return t.Grant.Validate()
	}
	return nil
}

// ValidateNew checks the record of a token being created: a valid record
// with a name and a role.
func (t *Token) ValidateNew() error {
	if err := t.Validate(); err != nil {
		return err
	}
	if err := access.CheckName("name", t.Name); err != nil {
		return err
	}
	return t.Grant.Validate()
}
