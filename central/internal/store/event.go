package store

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Event is one event a site sent, as central stores it.
type Event struct {
	Seq uint64 `json:"seq"`
	// Data is the event as the site recorded it.
	Data json.RawMessage `json:"data"`
	// Received is when central stored it.
	Received time.Time `json:"received"`
}

// StoreEvents stores the events of batch central has not stored yet, in
// one transaction, in order, and returns the highest sequence stored for
// the site after it. A batch past stored+1 leaves a gap: an error
// (syncproto bad_message), unless the gap ends at or before lostUpTo (the
// hello's acked_seq: events central acknowledged, then lost, and the site
// forgot), which is recorded as lost in Site.Lost.
func (d *DB) StoreEvents(site string, batch *syncproto.Events, lostUpTo uint64) (stored uint64, err error) {
	r, err := d.exec(&Command{Op: OpStoreEvents, Site: site, Events: batch, N: lostUpTo})
	return r.N, err
}

// storeEvents applies OpStoreEvents to site s.
func storeEvents(tx *bolt.Tx, s *Site, c *Command) (stored uint64, notify string, err error) {
	batch := c.Events
	if batch == nil {
		return 0, "", errs.Invalid("events", "is required")
	}
	fresh, err := batch.Unstored(s.StoredSeq)
	gap := batch.First > s.StoredSeq+1 && batch.First-1 <= c.N
	if gap {
		// The events up to the gap were acknowledged, then lost.
		fresh, err = batch.Unstored(batch.First - 1)
	}
	if err != nil {
		return 0, "", err
	}
	if gap {
		s.Lost = append(s.Lost, SeqRange{First: s.StoredSeq + 1, Last: batch.First - 1})
		s.StoredSeq = batch.First - 1
	}
	b := tx.Bucket(bucketEvents).Bucket([]byte(s.ID))
	for _, e := range fresh {
		if err := put(b, u64(e.Seq), &Event{Seq: e.Seq, Data: e.Data, Received: c.Time}); err != nil {
			return 0, "", err
		}
		s.StoredSeq = e.Seq
		notify = "e/"
	}
	return s.StoredSeq, notify, nil
}

// Events returns up to limit of site's events with Seq > since, oldest
// first, and the highest sequence stored.
func (d *DB) Events(site string, since uint64, limit int) (events []*Event, stored uint64, err error) {
	events = []*Event{}
	err = d.view(func(tx *bolt.Tx) error {
		s, err := siteIn(tx, site)
		if err != nil {
			return err
		}
		stored = s.StoredSeq
		c := tx.Bucket(bucketEvents).Bucket([]byte(site)).Cursor()
		for k, v := c.Seek(u64(since + 1)); k != nil && len(events) < limit; k, v = c.Next() {
			e := new(Event)
			if err := json.Unmarshal(v, e); err != nil {
				return ErrCorrupt
			}
			events = append(events, e)
		}
		return nil
	})
	return events, stored, err
}

// ResetEvents forgets every event stored for site, for an operator to
// resolve a conflict (a site whose history went back, see
// syncproto.Hello.CheckHistory): the site then sends its events again
// from its first. It returns how many events were dropped.
func (d *DB) ResetEvents(site string) (dropped uint64, err error) {
	r, err := d.exec(&Command{Op: OpResetEvents, Site: site})
	return r.N, err
}
