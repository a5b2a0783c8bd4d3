package store

import (
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
)

// applyCreateToken stores a new token with its name and role.
func applyCreateToken(tx *txn, p *createTokenPayload) (any, error) {
	t := p.Token
	if t == nil {
		return nil, errs.Invalid("token", "is required")
	}
	if err := access.CheckName("name", t.Name); err != nil {
		return nil, err
	}
	if err := t.Grant.Validate(); err != nil {
		return nil, err
	}
	return nil, putToken(tx, t)
}

// applyCreateAdminToken stores a token as the releases before roles did
// (cmdCreateAdminToken, and release b482c18's create_token): every token
// was an admin's, whatever the record says.
func applyCreateAdminToken(tx *txn, p *createTokenPayload) (any, error) {
	if p.Token != nil {
		p.Token.Grant = access.Grant{}
	}
	return nil, putToken(tx, p.Token)
}

// putToken stores a token under an id no token has.
func putToken(tx *txn, t *Token) error {
	if t == nil || t.ID == "" {
		return errs.Invalid("token", "is required")
	}
	b := tx.Bucket(bucketTokens)
	if b.Get([]byte(t.ID)) != nil {
		return errs.Conflict("token %q exists", t.ID)
	}
	return put(b, []byte(t.ID), t)
}

func applyDeleteToken(tx *txn, p *deleteTokenPayload) (any, error) {
	b := tx.Bucket(bucketTokens)
	if b.Get([]byte(p.ID)) == nil {
		return nil, errs.NotFound("token", p.ID)
	}
	return nil, b.Delete([]byte(p.ID))
}
