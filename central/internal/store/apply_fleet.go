package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// The fleet model (package fleet): each machine's record, derived in the
// apply that stores the site's events (applyStoreEvents) and the one
// that places an order (applyPutDesired), in bucket "fleet"; the index of
// each machine's events, for its timeline, in "machine_events"; and the
// link and report of each site on its record (applySetLink,
// applyReportSite).

// fleetChange is a record changed by a transaction: the index takes it
// once the transaction commits (nil M: the machine is gone).
type fleetChange struct {
	Site, ID string
	M        *fleet.Machine
	// SiteOnly: the site's own record changed (its link, report, labels
	// or cursors); Labels are its labels.
	SiteOnly bool
	Labels   map[string]string
}

// fleetBucket returns the site's bucket of machine records, made if
// missing (a site created before the fleet model has none).
func fleetBucket(tx *txn, bucket []byte, site string) (*bolt.Bucket, error) {
	return tx.Bucket(bucket).CreateBucketIfNotExists([]byte(site))
}

// machineRecord reads a machine's record (nil if none).
func machineRecord(b *bolt.Bucket, id string) (*fleet.Machine, error) {
	return get[fleet.Machine](b, []byte(id))
}

// putRecord stores m (nil: deletes id's record) and schedules it for the
// index.
func putRecord(tx *txn, b *bolt.Bucket, site, id string, m *fleet.Machine) error {
	tx.fleet = append(tx.fleet, fleetChange{Site: site, ID: id, M: m})
	if m == nil {
		return b.Delete([]byte(id))
	}
	return put(b, []byte(id), m)
}

// machineEventKey is the key of a machine's event in "machine_events":
// its id, a zero byte and the big-endian sequence.
func machineEventKey(id string, seq uint64) []byte {
	return append(append([]byte(id), 0), u64(seq)...)
}

// deriveEvents folds the site's newly stored events into its machines'
// records and indexes each machine's events. It reads each record once
// and writes it once per batch.
func deriveEvents(tx *txn, site string, events []syncproto.Event) error {
	records, err := fleetBucket(tx, bucketFleet, site)
	if err != nil {
		return err
	}
	byMachine, err := fleetBucket(tx, bucketMachineEvents, site)
	if err != nil {
		return err
	}
	cache := map[string]*fleet.Machine{}
	changed := []string{}
	for _, se := range events {
		var e fleet.SiteEvent
		if json.Unmarshal(se.Data, &e) != nil {
			continue // not the site's JSON: nothing of a machine
		}
		if e.MachineID == "" && e.Kind == "sync.order_refused" {
			// A site's release before ApplyDesired 51 names no machine:
			// the order central placed does.
			e.MachineID = desiredOrderMachine(tx, site, e.Fields["order"])
		}
		if e.MachineID == "" {
			continue
		}
		e.Seq = se.Seq
		m, ok := cache[e.MachineID]
		if !ok {
			if m, err = machineRecord(records, e.MachineID); err != nil {
				return err
			}
		}
		next, did := fleet.Apply(site, m, &e)
		cache[e.MachineID] = next
		if did {
			// The machine's timeline has it, its delete included.
			changed = append(changed, e.MachineID)
			if err := byMachine.Put(machineEventKey(e.MachineID, e.Seq), []byte{}); err != nil {
				return err
			}
		}
	}
	done := map[string]bool{}
	for _, id := range changed {
		if done[id] {
			continue
		}
		done[id] = true
		if err := putRecord(tx, records, site, id, cache[id]); err != nil {
			return err
		}
	}
	return nil
}

// desiredOrderMachine is the machine of the site's desired order key
// ("" if there is none).
func desiredOrderMachine(tx *txn, site, key string) string {
	b := tx.Bucket(bucketDesired).Bucket([]byte(site))
	if b == nil {
		return ""
	}
	var o placedOrder
	if raw := b.Get(itemKey(KindOrder, key)); raw == nil || json.Unmarshal(raw, &o) != nil {
		return ""
	}
	return o.MachineID
}

// placedOrder reads what the fleet model keeps of an order object.
type placedOrder struct {
	MachineID   string `json:"machine_id"`
	Action      string `json:"action"`
	Image       string `json:"image"`
	ImageSHA256 string `json:"image_sha256"`
	Traceparent string `json:"traceparent"`
}

// derivePlaced makes an order central placed in revision rev its
// machine's last order, if central holds the machine's record.
func derivePlaced(tx *txn, site, key string, object json.RawMessage, rev uint64, of revisionOf) error {
	var o placedOrder
	if err := json.Unmarshal(object, &o); err != nil {
		return fmt.Errorf("%w: order %s/%s: %v", ErrCorrupt, site, key, err)
	}
	b, err := fleetBucket(tx, bucketFleet, site)
	if err != nil {
		return err
	}
	m, err := machineRecord(b, o.MachineID)
	if err != nil || m == nil {
		return err
	}
	m = fleet.PlaceOrder(m, fleet.PlacedOrder{Key: key, Action: o.Action, Image: o.Image, ImageSHA256: o.ImageSHA256,
		By: of.by, Revision: rev, Time: of.time, TraceID: tracing.TraceID(o.Traceparent)})
	return putRecord(tx, b, site, o.MachineID, m)
}

// deriveDeclared records a machine central put into the site's desired
// state: declared until the site reports it (fleet.Declare).
func deriveDeclared(tx *txn, site, key string, object json.RawMessage, t time.Time) error {
	var obj syncproto.Machine
	if err := json.Unmarshal(object, &obj); err != nil {
		return fmt.Errorf("%w: machine %s/%s: %v", ErrCorrupt, site, key, err)
	}
	obj.ID = key
	b, err := fleetBucket(tx, bucketFleet, site)
	if err != nil {
		return err
	}
	m, err := machineRecord(b, key)
	if err != nil {
		return err
	}
	if d := fleet.Declare(m, site, &obj, t); d != m {
		return putRecord(tx, b, site, key, d)
	}
	return nil
}

// deriveUndeclared forgets the record of a machine central deleted from
// the site's desired state if the site never reported it (else the
// site's machine.deleted event will).
func deriveUndeclared(tx *txn, site, key string) error {
	b, err := fleetBucket(tx, bucketFleet, site)
	if err != nil {
		return err
	}
	m, err := machineRecord(b, key)
	if err != nil || m == nil || m.Seq != 0 {
		return err
	}
	return putRecord(tx, b, site, key, nil)
}

// placedMarker is in the JSON of a record whose last order is placed:
// only those records are decoded when a site acknowledges a revision.
var placedMarker = []byte(`"status":"` + fleet.OrderPlaced + `"`)

// deriveDelivered marks delivered the orders central placed in a
// revision at or below acked, which the site has applied.
func deriveDelivered(tx *txn, site string, acked uint64, t time.Time) error {
	b := tx.Bucket(bucketFleet).Bucket([]byte(site))
	if b == nil {
		return nil
	}
	var updates []*fleet.Machine
	err := b.ForEach(func(k, v []byte) error {
		if !bytes.Contains(v, placedMarker) {
			return nil
		}
		m, err := machineRecord(b, string(k))
		if err != nil {
			return err
		}
		if d := fleet.Delivered(m, acked, t); d != nil {
			updates = append(updates, d)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range updates {
		if err := putRecord(tx, b, site, m.ID, m); err != nil {
			return err
		}
	}
	return nil
}

// forgetFleet forgets the site's machine records and their events'
// index (its events were reset: they come again from the first).
func forgetFleet(tx *txn, site string) error {
	for _, name := range [][]byte{bucketFleet, bucketMachineEvents} {
		b := tx.Bucket(name)
		if b.Bucket([]byte(site)) == nil {
			continue
		}
		if bytes.Equal(name, bucketFleet) {
			if err := b.Bucket([]byte(site)).ForEach(func(k, _ []byte) error {
				tx.fleet = append(tx.fleet, fleetChange{Site: site, ID: string(k)})
				return nil
			}); err != nil {
				return err
			}
		}
		if err := b.DeleteBucket([]byte(site)); err != nil {
			return err
		}
	}
	return nil
}

// siteChanged tells the index, once the transaction commits, that site
// s's own record changed.
func siteChanged(tx *txn, s *Site) {
	tx.fleet = append(tx.fleet, fleetChange{Site: s.ID, SiteOnly: true, Labels: s.Labels})
}

// applySetLink records that a central node holds the site's session, or
// that it ended.
func applySetLink(tx *txn, p *setLinkPayload) (any, error) {
	return nil, updateSite(tx, p.Site, func(s *Site) error {
		s.LastSeen = p.Time
		switch {
		case p.Connected:
			s.Link = &SiteLink{Node: p.Node, Since: p.Since}
		case s.Link != nil && s.Link.Node == p.Node && s.Link.Since.Equal(p.Since):
			s.Link = nil // only the session's own end ends it: not a newer one's
		}
		siteChanged(tx, s)
		return nil
	})
}

// applyReportSite records what the site reported of itself.
func applyReportSite(tx *txn, p *reportSitePayload) (any, error) {
	return nil, updateSite(tx, p.Site, func(s *Site) error {
		s.LastSeen = p.Time
		s.Report = &SiteReport{Report: *p.Report, Time: p.Time}
		siteChanged(tx, s)
		return nil
	})
}
