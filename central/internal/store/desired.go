package store

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// Kinds of desired objects central manages for a site: syncproto's, in
// the order a snapshot lists them so that references resolve at the site
// (images and templates before the machines that use them, machines
// before orders).
const (
	KindImage    = syncproto.KindImage
	KindTemplate = syncproto.KindTemplate
	KindMachine  = syncproto.KindMachine
	KindOrder    = syncproto.KindOrder
)

// Kinds lists the kinds in snapshot order.
var Kinds = syncproto.Kinds

// Revision is one change of a site's desired state (a delta), or a full
// snapshot of it.
type Revision struct {
	Revision uint64    `json:"revision"`
	Full     bool      `json:"full,omitempty"`
	Time     time.Time `json:"time"`
	// By is who made it: the name of the API token it came with, or
	// "central" (access.ByCentral); none in one of a release before
	// actors.
	By      string             `json:"by,omitempty"`
	Changes []syncproto.Change `json:"changes"`
}

// Item is one desired object.
type Item struct {
	Kind   string          `json:"kind"`
	Key    string          `json:"key"`
	Object json.RawMessage `json:"object"`
}

func itemKey(kind, key string) []byte { return []byte(kind + "\x00" + key) }

// validItem checks a desired object and returns it compacted.
func validItem(kind, key string, obj json.RawMessage) (json.RawMessage, error) {
	if !slices.Contains(Kinds, kind) {
		return nil, errs.Invalid("kind", "%q is not one of %s", kind, strings.Join(Kinds, ", "))
	}
	if err := validKey(key); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, obj); err != nil {
		return nil, errs.Invalid("object", "is not valid JSON")
	}
	if buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, errs.Invalid("object", "must be a JSON object")
	}
	if buf.Len() > syncproto.MaxObjectSize {
		return nil, errs.Invalid("object", "is %d bytes, more than the limit of %d", buf.Len(), syncproto.MaxObjectSize)
	}
	return buf.Bytes(), nil
}

func validKey(key string) error {
	switch {
	case key == "":
		return errs.Invalid("key", "is required")
	case len(key) > syncproto.MaxKeySize:
		return errs.Invalid("key", "is %d bytes, more than the limit of %d", len(key), syncproto.MaxKeySize)
	case !utf8.ValidString(key):
		return errs.Invalid("key", "is not valid UTF-8")
	case strings.ContainsFunc(key, unicode.IsControl):
		return errs.Invalid("key", "holds a control character")
	}
	return nil
}

// PutDesired puts an object of kind into site's desired state and
// appends the revision that carries it, which it returns. Putting an
// object exactly as it is changes nothing (and returns the latest
// revision); an order, once placed, cannot change (errs.ErrConflict).
// The revision is central's own; PutDesiredBy names who made it.
func (d *DB) PutDesired(site, kind, key string, obj json.RawMessage) (uint64, error) {
	return d.PutDesiredBy(access.ByCentral, site, kind, key, obj)
}

// PutDesiredBy is PutDesired by the actor by: the name of the API token
// the change came with.
func (d *DB) PutDesiredBy(by, site, kind, key string, obj json.RawMessage) (uint64, error) {
	obj, err := validItem(kind, key, obj)
	if err != nil {
		return 0, err
	}
	if obj == nil {
		return 0, errs.Invalid("object", "is required")
	}
	if kind == KindMachine {
		if obj, err = sealMachine(d.key, site, key, obj); err != nil {
			return 0, err
		}
	}
	return d.exec(cmdPutDesired, &putDesiredPayload{Site: site, Kind: kind, Key: key, Object: obj, Time: d.now().UTC(), By: by})
}

// DeleteDesired deletes an object from site's desired state and appends
// the revision that carries the delete, which it returns.
func (d *DB) DeleteDesired(site, kind, key string) (uint64, error) {
	return d.DeleteDesiredBy(access.ByCentral, site, kind, key)
}

// DeleteDesiredBy is DeleteDesired by the actor by.
func (d *DB) DeleteDesiredBy(by, site, kind, key string) (uint64, error) {
	if _, err := validItem(kind, key, nil); err != nil {
		return 0, err
	}
	return d.exec(cmdDeleteDesired, &deleteDesiredPayload{Site: site, Kind: kind, Key: key, Time: d.now().UTC(), By: by})
}

// Desired returns one desired object of site.
func (d *DB) Desired(site, kind, key string) (json.RawMessage, error) {
	var out json.RawMessage
	err := d.view(func(tx *bolt.Tx) error {
		if _, err := siteIn(tx, site); err != nil {
			return err
		}
		v := tx.Bucket(bucketDesired).Bucket([]byte(site)).Get(itemKey(kind, key))
		if v == nil {
			return errs.NotFound(kind, key)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// ListDesired returns site's desired objects of kind in key order.
func (d *DB) ListDesired(site, kind string) ([]Item, error) {
	var out []Item
	err := d.view(func(tx *bolt.Tx) (err error) {
		if _, err := siteIn(tx, site); err != nil {
			return err
		}
		out, err = items(tx, site, kind)
		return err
	})
	return out, err
}

func items(tx *bolt.Tx, site, kind string) ([]Item, error) {
	out := []Item{}
	prefix := []byte(kind + "\x00")
	c := tx.Bucket(bucketDesired).Bucket([]byte(site)).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out = append(out, Item{Kind: kind, Key: string(k[len(prefix):]), Object: bytes.Clone(v)})
	}
	return out, nil
}

// snapshot lists site's whole desired state as puts, in Kinds order.
func snapshot(tx *bolt.Tx, site string) ([]syncproto.Change, error) {
	changes := []syncproto.Change{}
	for _, kind := range Kinds {
		its, err := items(tx, site, kind)
		if err != nil {
			return nil, err
		}
		for _, it := range its {
			changes = append(changes, syncproto.Change{Kind: it.Kind, Key: it.Key, Object: it.Object})
		}
	}
	return changes, nil
}

// NextRevisions returns what central sends a site that has applied
// revision after: the revisions after+1, after+2, ... (at most max) if
// it has them, else a full snapshot of the latest revision; none if
// after is the latest.
func (d *DB) NextRevisions(site string, after uint64, max int) ([]*Revision, error) {
	var out []*Revision
	err := d.view(func(tx *bolt.Tx) error {
		s, err := siteIn(tx, site)
		if err != nil || after >= s.Revision {
			return err
		}
		b := tx.Bucket(bucketRevisions).Bucket([]byte(site))
		for rev := after + 1; rev <= s.Revision && len(out) < max; rev++ {
			r, err := get[Revision](b, u64(rev))
			if err != nil {
				return err
			}
			if r == nil {
				break
			}
			out = append(out, r)
		}
		if len(out) > 0 {
			return nil
		}
		changes, err := snapshot(tx, site)
		out = []*Revision{{Revision: s.Revision, Full: true, Changes: changes}}
		return err
	})
	if err != nil {
		return nil, err
	}
	// The site gets its machines' BMC passwords in the clear (it seals
	// them with its own key); the store keeps them sealed.
	for _, r := range out {
		for i, c := range r.Changes {
			if c.Kind != KindMachine || c.Deleted {
				continue
			}
			if r.Changes[i].Object, err = openMachine(d.key, site, c.Key, c.Object); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// NextRevision is the revision central will send first to a site that
// has applied revision after (Welcome.NextRevision).
func (d *DB) NextRevision(site string, after uint64) (uint64, error) {
	next := after + 1
	err := d.view(func(tx *bolt.Tx) error {
		s, err := siteIn(tx, site)
		if err != nil || after >= s.Revision {
			return err
		}
		if tx.Bucket(bucketRevisions).Bucket([]byte(site)).Get(u64(after+1)) == nil {
			next = s.Revision
		}
		return nil
	})
	return next, err
}

// AdvancePast makes sure site's revisions are past applied: a site that
// has applied a revision central does not have (central was restored
// from an old backup) gets revision applied+1, a full snapshot, so that
// revisions never go back. It returns the site's latest revision.
func (d *DB) AdvancePast(site string, applied uint64) (latest uint64, err error) {
	return d.exec(cmdAdvancePast, &advancePastPayload{Site: site, Applied: applied, Time: d.now().UTC(), By: access.ByCentral})
}

// RecordAck records that site acknowledged revision rev.
func (d *DB) RecordAck(site string, rev uint64) error {
	_, err := d.exec(cmdRecordAck, &recordAckPayload{Site: site, Revision: rev, Time: d.now().UTC()})
	return err
}
