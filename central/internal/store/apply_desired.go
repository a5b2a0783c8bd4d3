package store

import (
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// applyPutDesired puts an object and returns the revision that carries
// it; the object exactly as it is changes nothing (the latest revision),
// and an order cannot change once placed.
func applyPutDesired(tx *txn, p *putDesiredPayload) (rev any, err error) {
	err = updateSite(tx, p.Site, func(s *Site) error {
		b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
		old := b.Get(itemKey(p.Kind, p.Key))
		switch {
		case string(old) == string(p.Object):
			rev = s.Revision
			return nil
		case old != nil && p.Kind == KindOrder:
			return errs.Conflict("order %q exists and differs: an order cannot change once placed", p.Key)
		case p.Kind == KindImage:
			if err := checkNotPlaced(tx.Tx, s.ID, p.Key); err != nil {
				return err
			}
			if err := checkImageArtifacts(tx.Tx, p.Object); err != nil {
				return err
			}
		}
		if err := b.Put(itemKey(p.Kind, p.Key), p.Object); err != nil {
			return err
		}
		n, err := appendRevision(tx, s, revisionOf{p.Time, p.By}, false, []syncproto.Change{{Kind: p.Kind, Key: p.Key, Object: p.Object}})
		if err != nil {
			return err
		}
		rev = n
		switch p.Kind {
		case KindOrder:
			return derivePlaced(tx, s.ID, p.Key, p.Object, n, revisionOf{p.Time, p.By})
		case KindMachine:
			return deriveDeclared(tx, s.ID, p.Key, p.Object, p.Time)
		}
		return nil
	})
	return rev, err
}

// applyDeleteDesired deletes an object and returns the revision that
// carries the delete.
func applyDeleteDesired(tx *txn, p *deleteDesiredPayload) (rev any, err error) {
	err = updateSite(tx, p.Site, func(s *Site) error {
		b := tx.Bucket(bucketDesired).Bucket([]byte(s.ID))
		if b.Get(itemKey(p.Kind, p.Key)) == nil {
			return errs.NotFound(p.Kind, p.Key)
		}
		if p.Kind == KindImage {
			if err := checkNotPlaced(tx.Tx, s.ID, p.Key); err != nil {
				return err
			}
		}
		if err := b.Delete(itemKey(p.Kind, p.Key)); err != nil {
			return err
		}
		rev, err = appendRevision(tx, s, revisionOf{p.Time, p.By}, false, []syncproto.Change{{Kind: p.Kind, Key: p.Key, Deleted: true}})
		if err != nil || p.Kind != KindMachine {
			return err
		}
		return deriveUndeclared(tx, s.ID, p.Key)
	})
	return rev, err
}

// applyAdvancePast makes the site's next revision a full snapshot past
// the one it applied, if central is behind it, and returns the latest.
func applyAdvancePast(tx *txn, p *advancePastPayload) (rev any, err error) {
	err = updateSite(tx, p.Site, func(s *Site) error {
		if p.Applied <= s.Revision {
			rev = s.Revision
			return nil
		}
		changes, err := snapshot(tx.Tx, s.ID)
		if err != nil {
			return err
		}
		s.Revision = p.Applied
		rev, err = appendRevision(tx, s, revisionOf{p.Time, p.By}, true, changes)
		return err
	})
	return rev, err
}

// applyRecordAck records the site's acknowledgement and returns the
// highest revision acknowledged.
func applyRecordAck(tx *txn, p *recordAckPayload) (acked any, err error) {
	err = updateSite(tx, p.Site, func(s *Site) error {
		if p.Revision > s.Revision {
			return errs.Invalid("revision", "is %d, past the latest revision %d", p.Revision, s.Revision)
		}
		s.AckedRevision = max(s.AckedRevision, p.Revision)
		acked = s.AckedRevision
		siteChanged(tx, s)
		return deriveDelivered(tx, s.ID, s.AckedRevision, p.Time)
	})
	return acked, err
}

// keepRevisions is how many of a site's latest revisions central keeps.
// A site further behind gets a full snapshot instead (NextRevisions), so
// the revisions of a site that never acknowledges stay bounded. Every
// node of a cluster must use the same value.
var keepRevisions uint64 = 1024

// revisionOf is when a revision was made, and by whom.
type revisionOf struct {
	time time.Time
	by   string
}

// appendRevision records the next revision of s (the caller stores s),
// forgets the one keepRevisions before it, and wakes the site's
// desired-state watchers.
func appendRevision(tx *txn, s *Site, of revisionOf, full bool, changes []syncproto.Change) (uint64, error) {
	s.Revision++
	r := &Revision{Revision: s.Revision, Full: full, Time: of.time, By: of.by, Changes: changes}
	b := tx.Bucket(bucketRevisions).Bucket([]byte(s.ID))
	if err := forgetRevisions(b, s.Revision); err != nil {
		return 0, err
	}
	tx.wake("d/" + s.ID)
	siteChanged(tx, s)
	return r.Revision, put(b, u64(r.Revision), r)
}

// forgetRevisions deletes the revisions at or below latest-keepRevisions:
// usually exactly one, as revisions are dense but for AdvancePast's jump.
func forgetRevisions(b *bolt.Bucket, latest uint64) error {
	if latest <= keepRevisions {
		return nil
	}
	c := b.Cursor()
	for k, _ := c.First(); k != nil && readU64(k) <= latest-keepRevisions; k, _ = c.First() {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
