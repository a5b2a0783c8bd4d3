package store

import (
	"encoding/hex"

	"github.com/outposthq/outpost/internal/errs"
)

// Token is an API credential. Only the SHA-256 of its secret part is
// stored; the secret is shown once, when the token is created.
type Token struct {
	Meta
	ID   string `json:"id"`
	Name string `json:"name"`
	// Hash is the hex SHA-256 of the token's secret.
	Hash string `json:"hash"`
}

func (*Token) Kind() string   { return "token" }
func (t *Token) Key() string  { return t.ID }
func (*Token) bucket() []byte { return bucketTokens }

// Validate checks the token record.
func (t *Token) Validate() error {
	if err := validName("id", t.ID); err != nil {
		return err
	}
	if b, err := hex.DecodeString(t.Hash); err != nil || len(b) != 32 {
		return errs.Invalid("hash", "must be a hex SHA-256")
	}
	return nil
}
