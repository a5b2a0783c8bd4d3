package store

import "github.com/outposthq/outpost/internal/errs"

func applyPutMember(tx *txn, p *putMemberPayload) (any, error) {
	if p.Member == nil {
		return nil, errs.Invalid("member", "is required")
	}
	if err := p.Member.Validate(); err != nil {
		return nil, err
	}
	return nil, put(tx.Bucket(bucketMembers), []byte(p.Member.ID), p.Member)
}

func applyDeleteMember(tx *txn, p *deleteMemberPayload) (any, error) {
	b := tx.Bucket(bucketMembers)
	if b.Get([]byte(p.ID)) == nil {
		return nil, errs.NotFound("member", p.ID)
	}
	return nil, b.Delete([]byte(p.ID))
}
