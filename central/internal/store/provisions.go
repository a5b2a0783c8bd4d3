package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ProvisionEnd is one provision order that ended at a site, as its
// events tell: created (order.created) and ended (order.succeeded or
// order.failed) at the site's times.
type ProvisionEnd struct {
	Site, Machine, Order string
	Created, Ended       time.Time
	OK                   bool
}

// Bounds of the provision history's read.
const (
	// provisionLookback is how long before the window a provision's
	// creation is looked for: one that ended in the window but started
	// longer before is not counted.
	provisionLookback = 12 * time.Hour
	// maxHistoryEvents bounds the events one read scans per site, so a
	// page of a long window answers in bounded time; the window is then
	// cut at the oldest event read (a site makes some 30 events a
	// provision). The newest events are read first.
	maxHistoryEvents = 2_000_000
)

// ProvisionsEnded returns the provisions that ended in [from, to] at
// site (every site for ""), from the events central stored, oldest end
// first. They are read from each site's newest event back to the
// window's start less provisionLookback.
func (d *DB) ProvisionsEnded(site string, from, to time.Time) ([]ProvisionEnd, error) {
	var out []ProvisionEnd
	err := d.view(func(tx *bolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		for _, name := range sitesOf(events, site) {
			b := events.Bucket([]byte(name))
			if b == nil {
				continue
			}
			ps, err := provisionsIn(b, name, from, to)
			if err != nil {
				return err
			}
			out = append(out, ps...)
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b ProvisionEnd) int { return a.Ended.Compare(b.Ended) })
	return out, err
}

// sitesOf are the names of events' site buckets: site alone, or all
// for "".
func sitesOf(events *bolt.Bucket, site string) []string {
	if site != "" {
		return []string{site}
	}
	var out []string
	events.ForEachBucket(func(k []byte) error {
		out = append(out, string(k))
		return nil
	})
	return out
}

// orderKind marks the stored events provisionsIn decodes: the site's
// JSON is compact, and only order events matter (most are not).
var orderKind = []byte(`"kind":"order.`)

// orderEventOf is what provisionsIn reads of a stored event.
type orderEventOf struct {
	Data struct {
		Time      time.Time `json:"time"`
		MachineID string    `json:"machine_id"`
		Kind      string    `json:"kind"`
		Fields    struct {
			Order  string `json:"order"`
			Action string `json:"action"`
		} `json:"fields"`
	} `json:"data"`
}

// provisionsIn reads one site's events bucket backwards: the provision
// orders that ended in [from, to], each with its creation. It decodes
// only the order events, and stops at the first older than the window
// less provisionLookback.
func provisionsIn(b *bolt.Bucket, site string, from, to time.Time) ([]ProvisionEnd, error) {
	ended := map[string]*ProvisionEnd{} // by machine and order
	var out []ProvisionEnd
	c := b.Cursor()
	n := 0
	for k, v := c.Last(); k != nil && n < maxHistoryEvents; k, v = c.Prev() {
		n++
		if !bytes.Contains(v, orderKind) {
			continue
		}
		var ev orderEventOf
		if err := json.Unmarshal(v, &ev); err != nil {
			return nil, fmt.Errorf("%w: site %s event %x: %v", ErrCorrupt, site, k, err)
		}
		e := &ev.Data
		if e.Time.Before(from.Add(-provisionLookback)) {
			break
		}
		key := e.MachineID + "\x00" + e.Fields.Order
		switch e.Kind {
		case "order.succeeded", "order.failed":
			if e.MachineID != "" && e.Fields.Action == "provision" && !e.Time.Before(from) && !e.Time.After(to) {
				ended[key] = &ProvisionEnd{Site: site, Machine: e.MachineID, Order: e.Fields.Order, Ended: e.Time, OK: e.Kind == "order.succeeded"}
			}
		case "order.created":
			if p := ended[key]; p != nil {
				p.Created = e.Time
				out = append(out, *p)
				delete(ended, key)
			}
		}
	}
	return out, nil
}
