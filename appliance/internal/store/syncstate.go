package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// Sync with central. Central sends the site's desired state by revision;
// the site applies each revision once (UnsafeApplyDesired records it in
// the same transaction as its changes) and sends its events, which are
// their own outbox: events are never deleted before central has
// acknowledged them, and the highest acknowledged sequence is recorded
// (UnsafeSetSyncAcked). Both cursors live in the meta bucket, so they are
// replicated, snapshotted and restored with everything else.

// Keys in bucketMeta for sync.
var (
	keySyncRevision = []byte("sync_applied_revision")
	keySyncAcked    = []byte("sync_acked_seq")
)

// SyncState is where the site stands with central.
type SyncState struct {
	// AppliedRevision is the last desired-state revision applied (0:
	// none).
	AppliedRevision uint64 `json:"applied_revision"`
	// AckedSeq is the highest event sequence central has acknowledged
	// (0: none).
	AckedSeq uint64 `json:"acked_seq"`
	// LastSeq is the newest event's sequence (0: none).
	LastSeq uint64 `json:"last_seq"`
}

// SyncState returns the sync cursors.
func (tx *Tx) SyncState() SyncState {
	meta := tx.tx.Bucket(bucketMeta)
	return SyncState{
		AppliedRevision: readU64(meta.Get(keySyncRevision)),
		AckedSeq:        readU64(meta.Get(keySyncAcked)),
		LastSeq:         tx.LastEventSeq(),
	}
}

// KeepAckedEvents is how many of the events central has acknowledged
// the site keeps, for its own console and API; older acknowledged events
// are deleted (UnsafeSetSyncAcked). An event central has not
// acknowledged is never deleted, and a site without central keeps all.
// Every node of a site must use the same value.
var KeepAckedEvents uint64 = 100000

// UnsafeSetSyncAcked records that central has stored the site's events up
// to seq, and deletes the acknowledged events older than the latest
// KeepAckedEvents. The cursor never goes back: a lower seq changes
// nothing. A seq past the last event is invalid.
func (tx *Tx) UnsafeSetSyncAcked(seq uint64) error {
	if last := tx.LastEventSeq(); seq > last {
		return errs.Invalid("seq", "%d is past the last event %d", seq, last)
	}
	if seq <= tx.SyncState().AckedSeq {
		return nil
	}
	if err := tx.tx.Bucket(bucketMeta).Put(keySyncAcked, u64(seq)); err != nil {
		return err
	}
	if seq <= KeepAckedEvents {
		return nil
	}
	// At most pruneBatch at a time, so that no one command grows large
	// (the first acknowledgement of a long history); later ones go on.
	b := tx.tx.Bucket(bucketEvents)
	c := b.Cursor()
	for i, k := 0, firstKey(c); i < pruneBatch && k != nil && readU64(k) <= seq-KeepAckedEvents; i, k = i+1, firstKey(c) {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// pruneBatch bounds the events one acknowledgement deletes.
const pruneBatch = 10000

func firstKey(c interface{ First() ([]byte, []byte) }) []byte {
	k, _ := c.First()
	return k
}

// Kinds of desired-state objects central manages at a site.
const (
	DesiredOrder    = "order"
	DesiredMachine  = "machine"
	DesiredImage    = "image"
	DesiredTemplate = "template"
)

// DesiredChange puts or deletes one object of desired state, as central
// sends it (syncproto.Change).
type DesiredChange struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Object  json.RawMessage `json:"object,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// Desired is one complete revision of desired state.
type Desired struct {
	Revision uint64          `json:"revision"`
	Full     bool            `json:"full,omitempty"`
	Changes  []DesiredChange `json:"changes"`
}

// DesiredResult says what applying a revision did.
type DesiredResult struct {
	Revision uint64 `json:"revision"`
	// Applied is false for a revision at or below the applied one: it was
	// applied before, and nothing changed.
	Applied bool `json:"applied"`
	// Refused counts the changes the store refused; each is recorded as
	// an event (sync.order_refused, sync.change_refused).
	Refused int `json:"refused,omitempty"`
}

// Validate checks the revision's shape before anything is written.
func (d *Desired) Validate() error {
	if d.Revision == 0 {
		return errs.Invalid("revision", "is required")
	}
	seen := make(map[[2]string]bool, len(d.Changes))
	for i, c := range d.Changes {
		f := fmt.Sprintf("changes[%d]", i)
		switch {
		case c.Kind == "":
			return errs.Invalid(f+".kind", "is required")
		case c.Key == "":
			return errs.Invalid(f+".key", "is required")
		case c.Deleted && d.Full:
			return errs.Invalid(f+".deleted", "a full snapshot has no deletes")
		case c.Deleted && len(c.Object) > 0:
			return errs.Invalid(f+".object", "a delete has no object")
		case !c.Deleted && len(c.Object) == 0:
			return errs.Invalid(f+".object", "is required unless deleted")
		case seen[[2]string{c.Kind, c.Key}]:
			return errs.Invalid(f+".key", "%s %q is named twice", c.Kind, c.Key)
		}
		seen[[2]string{c.Kind, c.Key}] = true
	}
	return nil
}

// UnsafeApplyDesired applies revision d and records it as applied, in
// this transaction. A revision at or below the applied one changes
// nothing (it was applied before: a command proposed twice applies once);
// one that neither follows the applied one nor is a full snapshot past
// it is refused. Changes are applied in order; a change the store refuses
// (an order whose machine has no BMC, a MAC that belongs to another
// machine, an object that does not validate) changes nothing itself, is
// recorded as an event naming the reason, and does not stop the others.
//
// Objects keep what the appliance owns: a machine put keeps its state
// (unless the object names one), its workflow, its power, its discovered
// hardware and its sealed BMC password (unless it names another); an
// order that exists is left as it is. Machine objects must not carry a
// BMC password in the clear: the proposer seals it.
//
// A full snapshot puts every object it names, then deletes the machines,
// images and templates central put before and the snapshot does not
// name (orders stay: they are the site's history).
func (tx *Tx) UnsafeApplyDesired(d *Desired, w Write) (*DesiredResult, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	applied := tx.SyncState().AppliedRevision
	switch {
	case d.Revision <= applied:
		return &DesiredResult{Revision: d.Revision}, nil
	case !d.Full && d.Revision != applied+1:
		return nil, errs.Conflict("desired revision %d does not follow the applied revision %d", d.Revision, applied)
	}
	res := &DesiredResult{Revision: d.Revision, Applied: true}
	for _, c := range d.Changes {
		if err := tx.applyOrRefuse(d.Revision, c, w, res); err != nil {
			return nil, err
		}
	}
	if d.Full {
		// What central manages here but the snapshot does not name is
		// gone at central.
		for _, c := range tx.unnamedManaged(d.Changes) {
			if err := tx.applyOrRefuse(d.Revision, c, w, res); err != nil {
				return nil, err
			}
		}
	}
	if err := tx.tx.Bucket(bucketMeta).Put(keySyncRevision, u64(d.Revision)); err != nil {
		return nil, err
	}
	return res, nil
}

// applyOrRefuse applies one change, keeps the set of objects central
// manages, and records a refusal as an event. Only a storage failure is
// returned.
func (tx *Tx) applyOrRefuse(rev uint64, c DesiredChange, w Write, res *DesiredResult) error {
	err := tx.applyDesiredChange(c, w)
	if err == nil {
		if c.Kind == DesiredOrder {
			return nil // orders are history: a snapshot does not delete them
		}
		meta := tx.tx.Bucket(bucketMeta)
		if c.Deleted {
			return meta.Delete(managedKey(c.Kind, c.Key))
		}
		return meta.Put(managedKey(c.Kind, c.Key), u64(rev))
	}
	e, ok := errs.AsError(err)
	if !ok || errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("desired revision %d: %s %q: %w", rev, c.Kind, c.Key, err)
	}
	res.Refused++
	return tx.UnsafeAppendEvent(refusedEvent(rev, c, e), w.Index, w.Time)
}

// Central's objects at the site (machines, images, templates) are named
// in bucketMeta under keySyncManaged + kind + "/" + key, with the
// revision that put them: a full snapshot deletes those it does not name.
// Objects created at the site itself are not central's and stay.
var keySyncManaged = []byte("sync_managed/")

func managedKey(kind, key string) []byte {
	return []byte(string(keySyncManaged) + kind + "/" + key)
}

// unnamedManaged returns deletes of the objects central manages that
// changes does not name, in key order.
func (tx *Tx) unnamedManaged(changes []DesiredChange) []DesiredChange {
	named := make(map[string]bool, len(changes))
	for _, c := range changes {
		named[string(managedKey(c.Kind, c.Key))] = true
	}
	var out []DesiredChange
	cur := tx.tx.Bucket(bucketMeta).Cursor()
	for k, _ := cur.Seek(keySyncManaged); k != nil && bytes.HasPrefix(k, keySyncManaged); k, _ = cur.Next() {
		if named[string(k)] {
			continue
		}
		kind, key, ok := strings.Cut(string(k[len(keySyncManaged):]), "/")
		if ok {
			out = append(out, DesiredChange{Kind: kind, Key: key, Deleted: true})
		}
	}
	return out
}

// SyncManaged returns the objects central manages at the site, as
// "kind/key", in order.
func (tx *Tx) SyncManaged() []string {
	var out []string
	cur := tx.tx.Bucket(bucketMeta).Cursor()
	for k, _ := cur.Seek(keySyncManaged); k != nil && bytes.HasPrefix(k, keySyncManaged); k, _ = cur.Next() {
		out = append(out, string(k[len(keySyncManaged):]))
	}
	return out
}

// refusedEvent records a change of desired state that the store refused.
func refusedEvent(rev uint64, c DesiredChange, e *errs.Error) *Event {
	kind, verb := "sync.change_refused", "put"
	if c.Deleted {
		verb = "delete"
	}
	ev := &Event{Kind: kind, Message: fmt.Sprintf("desired revision %d: %s of %s %q refused: %s", rev, verb, c.Kind, c.Key, e.Error()),
		Fields: map[string]string{"revision": fmt.Sprint(rev), "kind": c.Kind, "key": c.Key, "reason": e.Error()}}
	if c.Kind == DesiredOrder {
		ev.Kind = "sync.order_refused"
		ev.Fields["order"] = c.Key
	}
	if len(ev.Message) > 4096 {
		ev.Message = ev.Message[:4096]
	}
	return ev
}

// applyDesiredChange applies one change or returns the domain error that
// refuses it, having changed nothing.
func (tx *Tx) applyDesiredChange(c DesiredChange, w Write) error {
	switch c.Kind {
	case DesiredOrder:
		if c.Deleted {
			return ignoreNotFound(tx.UnsafeDelete(&Order{}, c.Key, 0))
		}
		o, err := decodeDesired[Order](c, func(o *Order) *string { return &o.ID })
		if err != nil {
			return err
		}
		if _, err := Get[Order](tx, o.ID); err == nil {
			return nil // created before: the order follows its own course
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return tx.UnsafeCreateOrder(o, w)
	case DesiredMachine:
		if c.Deleted {
			return ignoreNotFound(tx.UnsafeDeleteMachine(c.Key, 0))
		}
		m, err := decodeDesired[Machine](c, func(m *Machine) *string { return &m.ID })
		if err != nil {
			return err
		}
		if err := tx.mergeDesiredMachine(m); err != nil {
			return err
		}
		return tx.UnsafePutMachine(m, w)
	case DesiredImage:
		if c.Deleted {
			return ignoreNotFound(tx.UnsafeDelete(&Image{}, c.Key, 0))
		}
		i, err := decodeDesired[Image](c, func(i *Image) *string { return &i.Name })
		if err != nil {
			return err
		}
		i.Normalize()
		if err := i.Validate(); err != nil {
			return err
		}
		return tx.UnsafePut(i, w)
	case DesiredTemplate:
		if c.Deleted {
			return ignoreNotFound(tx.UnsafeDelete(&Template{}, c.Key, 0))
		}
		t, err := decodeDesired[Template](c, func(t *Template) *string { return &t.Name })
		if err != nil {
			return err
		}
		if err := t.Validate(); err != nil {
			return err
		}
		return tx.UnsafePut(t, w)
	}
	return errs.Invalid("kind", "%q is not a kind the appliance takes from central (order, machine, image, template)", c.Kind)
}

// decodeDesired decodes a put's object; its key field, if empty, is the
// change's key, and must be it otherwise. The object's Meta is the
// store's: what central sent is dropped.
func decodeDesired[T any](c DesiredChange, key func(*T) *string) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(c.Object, v); err != nil {
		return nil, errs.Invalid("object", "does not decode as a %s: %v", c.Kind, err)
	}
	if m, ok := any(v).(interface{ ObjectMeta() *Meta }); ok {
		*m.ObjectMeta() = Meta{}
	}
	k := key(v)
	switch {
	case *k == "":
		*k = c.Key
	case *k != c.Key:
		return nil, errs.Invalid("key", "is %q but the object names %q", c.Key, *k)
	}
	return v, nil
}

// mergeDesiredMachine keeps what the appliance owns of a stored machine
// (Machine.KeepApplianceFields), normalizes and validates m.
func (tx *Tx) mergeDesiredMachine(m *Machine) error {
	old, err := Get[Machine](tx, m.ID)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	if m.BMC != nil && m.BMC.Password != "" {
		return errs.Invalid("bmc.password", "reached the store in the clear: the proposer seals it")
	}
	m.KeepApplianceFields(old)
	if m.BMC != nil {
		m.BMC.PasswordSet = false
	}
	m.Normalize()
	return m.Validate()
}

func ignoreNotFound(err error) error {
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	return err
}
