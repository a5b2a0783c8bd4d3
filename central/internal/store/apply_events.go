package store

import (
	"github.com/outposthq/outpost/internal/errs"
)

// applyStoreEvents stores the events of the batch after the site's
// highest stored sequence and returns the new highest. A batch that
// would leave a gap is refused (syncproto bad_message) unless the gap
// ends at or before LostUpTo, which is then recorded as lost.
func applyStoreEvents(tx *txn, p *storeEventsPayload) (stored any, err error) {
	batch := p.Events
	err = updateSite(tx, p.Site, func(s *Site) error {
		if batch == nil {
			return errs.Invalid("events", "is required")
		}
		fresh, err := batch.Unstored(s.StoredSeq)
		gap := batch.First > s.StoredSeq+1 && batch.First-1 <= p.LostUpTo
		if gap {
			// The events up to the gap were acknowledged, then lost.
			fresh, err = batch.Unstored(batch.First - 1)
		}
		if err != nil {
			return err
		}
		if gap {
			s.Lost = append(s.Lost, SeqRange{First: s.StoredSeq + 1, Last: batch.First - 1})
			s.StoredSeq = batch.First - 1
		}
		b := tx.Bucket(bucketEvents).Bucket([]byte(s.ID))
		for _, e := range fresh {
			if err := put(b, u64(e.Seq), &Event{Seq: e.Seq, Data: e.Data, Received: p.Time}); err != nil {
				return err
			}
			s.StoredSeq = e.Seq
			tx.wake("e/" + s.ID)
		}
		stored = s.StoredSeq
		siteChanged(tx, s)
		return deriveEvents(tx, s.ID, fresh)
	})
	return stored, err
}

// applyResetEvents forgets the site's events and returns how many there
// were.
func applyResetEvents(tx *txn, p *resetEventsPayload) (dropped any, err error) {
	err = updateSite(tx, p.Site, func(s *Site) error {
		b := tx.Bucket(bucketEvents)
		n := uint64(b.Bucket([]byte(s.ID)).Stats().KeyN)
		if err := b.DeleteBucket([]byte(s.ID)); err != nil {
			return err
		}
		if _, err := b.CreateBucket([]byte(s.ID)); err != nil {
			return err
		}
		s.StoredSeq, s.Lost, dropped = 0, nil, n
		siteChanged(tx, s)
		return forgetFleet(tx, s.ID)
	})
	return dropped, err
}
