package store

import "github.com/outposthq/outpost/internal/errs"

// applyAddAnnotation records an annotation at the next id, forgetting
// the one keepAnnotations before it, and returns its id. Its site, if
// it names one, must exist.
func applyAddAnnotation(tx *txn, p *addAnnotationPayload) (any, error) {
	a := p.Annotation
	if a == nil {
		return nil, errs.Invalid("annotation", "is required")
	}
	if err := a.Check(); err != nil {
		return nil, err
	}
	if a.Site != "" {
		if _, err := siteIn(tx.Tx, a.Site); err != nil {
			return nil, err
		}
	}
	// A file restored from a release before annotations has no bucket.
	b, err := tx.CreateBucketIfNotExists(bucketAnnotations)
	if err != nil {
		return nil, err
	}
	last, _ := b.Cursor().Last()
	a.ID = readU64(last) + 1
	if a.ID > keepAnnotations {
		if err := b.Delete(u64(a.ID - keepAnnotations)); err != nil {
			return nil, err
		}
	}
	return a.ID, put(b, u64(a.ID), a)
}
