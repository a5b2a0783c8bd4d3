package store

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"

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
	return d.exec(cmdStoreEvents, &storeEventsPayload{Site: site, Events: batch, LostUpTo: lostUpTo, Time: d.now().UTC()})
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
	return d.exec(cmdResetEvents, &resetEventsPayload{Site: site})
}
