package store

import (
	"github.com/outposthq/outpost/internal/errs"
)

// applyCreateSite creates a site and its per-site buckets, and places
// the catalogue's images its labels match (a first revision, if any).
func applyCreateSite(tx *txn, p *createSitePayload) (any, error) {
	s := p.Site
	if s == nil {
		return nil, errs.Invalid("site", "is required")
	}
	if err := CheckLabels("labels", s.Labels); err != nil {
		return nil, err
	}
	b := tx.Bucket(bucketSites)
	if b.Get([]byte(s.ID)) != nil {
		return nil, errs.Conflict("site %q exists", s.ID)
	}
	for _, name := range [][]byte{bucketDesired, bucketRevisions, bucketEvents} {
		if _, err := tx.Bucket(name).CreateBucketIfNotExists([]byte(s.ID)); err != nil {
			return nil, err
		}
	}
	if err := put(b, []byte(s.ID), s); err != nil {
		return nil, err
	}
	siteChanged(tx, s)
	return nil, placeCatalogue(tx, s, revisionOf{s.CreatedAt, p.By})
}

func applySeen(tx *txn, p *seenPayload) (any, error) {
	return nil, updateSite(tx, p.Site, func(s *Site) error {
		s.LastSeen = p.Time
		siteChanged(tx, s)
		return nil
	})
}

// updateSite runs fn on site id's record and stores it after, unless fn
// fails.
func updateSite(tx *txn, id string, fn func(s *Site) error) error {
	s, err := siteIn(tx.Tx, id)
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		return err
	}
	return put(tx.Bucket(bucketSites), []byte(id), s)
}
