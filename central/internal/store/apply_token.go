package store

import "github.com/outposthq/outpost/internal/errs"

func applyCreateToken(tx *txn, p *createTokenPayload) (any, error) {
	t := p.Token
	if t == nil || t.ID == "" {
		return nil, errs.Invalid("token", "is required")
	}
	b := tx.Bucket(bucketTokens)
	if b.Get([]byte(t.ID)) != nil {
		return nil, errs.Conflict("token %q exists", t.ID)
	}
	return nil, put(b, []byte(t.ID), t)
}
