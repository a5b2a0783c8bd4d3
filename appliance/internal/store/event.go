package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// Event is one thing that happened at the site. Events are append-only and
// numbered densely by Seq in log order.
type Event struct {
	Seq       uint64            `json:"seq"`
	Index     uint64            `json:"index"` // Raft index of the command that recorded it
	Time      time.Time         `json:"time"`
	MachineID string            `json:"machine_id,omitempty"`
	Kind      string            `json:"kind"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
	// By is who made the change the event records: the name of the API
	// token it came with, or the part of the system that made it ("site",
	// "site/dhcp", "central": access.BySite). Events of commands of
	// releases before it was recorded have none.
	By string `json:"by,omitempty"`
}

// Validate checks an event before it is recorded.
func (e *Event) Validate() error {
	if e.Kind == "" {
		return errs.Invalid("kind", "is required")
	}
	if len(e.Message) > 4096 {
		return errs.Invalid("message", "is longer than 4096 bytes")
	}
	return nil
}

// LastEventSeq is the sequence number of the newest event (0 if none).
func (tx *Tx) LastEventSeq() uint64 {
	return readU64(tx.tx.Bucket(bucketMeta).Get(keyEventSeq))
}

// appendFill is how full bbolt leaves the pages of a bucket whose keys
// only grow (events) when it splits them. Its default, half full, suits
// random inserts, which fill the halves later; appended keys never come
// back to a page once it is split, so half-full pages stay half full:
// twice the pages written by a storm of events, and twice the pages kept.
const appendFill = 0.9

// UnsafeAppendEvent numbers e with the next sequence number and stores it.
func (tx *Tx) UnsafeAppendEvent(e *Event, index uint64, t time.Time) error {
	seq := tx.LastEventSeq() + 1
	e.Seq, e.Index, e.Time = seq, index, t
	raw, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("store: encode event: %w", err)
	}
	b := tx.tx.Bucket(bucketEvents)
	b.FillPercent = appendFill
	if err := b.Put(u64(seq), raw); err != nil {
		return err
	}
	return tx.tx.Bucket(bucketMeta).Put(keyEventSeq, u64(seq))
}

// EventsSince returns up to limit events with Seq > since, oldest first.
func (tx *Tx) EventsSince(since uint64, limit int) ([]*Event, error) {
	var out []*Event
	c := tx.tx.Bucket(bucketEvents).Cursor()
	for k, v := c.Seek(u64(since + 1)); k != nil && len(out) < limit; k, v = c.Next() {
		e, err := decode[Event](bucketEvents, k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// EventsBefore calls fn on the events with since < Seq < before, newest
// first (before 0: from the newest), until fn returns false or there is
// none left; it decodes only the events it hands to fn.
func (tx *Tx) EventsBefore(since, before uint64, fn func(*Event) bool) error {
	c := tx.tx.Bucket(bucketEvents).Cursor()
	var k, v []byte
	if before == 0 {
		k, v = c.Last()
	} else if k, v = c.Seek(u64(before)); k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	for ; k != nil && readU64(k) > since; k, v = c.Prev() {
		e, err := decode[Event](bucketEvents, k, v)
		if err != nil {
			return err
		}
		if !fn(e) {
			return nil
		}
	}
	return nil
}
