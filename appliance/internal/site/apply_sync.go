package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// Sync with central. Central sends the site's desired state by revision;
// the site applies each revision once (its applied revision is recorded
// in the same transaction as its changes) and sends its events, which are
// their own outbox: an event is never deleted before central has
// acknowledged it.

// KeepAckedEvents is how many of the events central has acknowledged the
// site keeps, for its own console and API; older acknowledged events are
// deleted (applyAckEvents). An event central has not acknowledged is
// never deleted, and a site without central keeps all. Every node of a
// site must use the same value.
var KeepAckedEvents uint64 = 100000

// pruneBatch bounds the events one acknowledgement deletes, so that no
// one command grows large (the first acknowledgement of a long history);
// later ones go on.
const pruneBatch = 10000

// applyAckEvents records that central has stored the site's events up to
// a sequence, and deletes the acknowledged events older than the latest
// KeepAckedEvents. The cursor never goes back: a lower sequence changes
// nothing. One past the last event is invalid.
func applyAckEvents(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req AckedPayload
	command.MustDecode(payload, &req, index)
	if last := tx.LastEventSeq(); req.Seq > last {
		return nil, errs.Invalid("seq", "%d is past the last event %d", req.Seq, last)
	}
	if req.Seq <= tx.SyncState().AckedSeq {
		return nil, nil
	}
	if err := tx.UnsafeSetSyncAcked(req.Seq); err != nil {
		return nil, err
	}
	if req.Seq <= KeepAckedEvents {
		return nil, nil
	}
	return nil, tx.UnsafeDeleteEventsThrough(req.Seq-KeepAckedEvents, pruneBatch)
}

func applyDesired(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req DesiredPayload
	command.MustDecode(payload, &req, index)
	return applyRevision(tx, &req.Desired, store.Write{Index: index, Time: req.Time, By: req.By}, orderRules{choose: chooseBootAddress, waits: true, machineEvents: true})
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

// applyRevision applies revision d and records it as applied. A revision
// at or below the applied one changes nothing (it was applied before: a
// command proposed twice applies once); one that neither follows the
// applied one nor is a full snapshot past it is refused. Changes are
// applied in order; a change the site refuses (an order whose machine has
// no BMC, a MAC that belongs to another machine, an object that does not
// validate) changes nothing itself, is recorded as an event naming the
// reason, and does not stop the others.
//
// Objects keep what the appliance owns: a machine put keeps its state
// (unless the object names one), its workflow, its power, its discovered
// hardware and its sealed BMC password (unless it names another); an
// order that exists is left as it is. Machine objects must not carry a
// BMC password in the clear: the proposer seals it.
//
// A full snapshot puts every object it names, then deletes the machines,
// images and templates central put before and the snapshot does not name
// (orders stay: they are the site's history).
func applyRevision(tx *store.Tx, d *Desired, w store.Write, rules orderRules) (*DesiredResult, error) {
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
	changes := d.Changes
	if d.Full {
		// What central manages here but the snapshot does not name is
		// gone at central.
		changes = append(changes[:len(changes):len(changes)], unnamedManaged(tx, d.Changes)...)
	}
	images := false
	for _, c := range changes {
		if err := applyOrRefuse(tx, d.Revision, c, w, res, rules); err != nil {
			return nil, err
		}
		images = images || c.Kind == DesiredImage
	}
	// The artifact records follow the images once the revision is in.
	if images && rules.waits {
		if err := imagesChanged(tx, w); err != nil {
			return nil, err
		}
	}
	return res, tx.UnsafeSetSyncRevision(d.Revision)
}

// applyOrRefuse applies one change, keeps the set of objects central
// manages, and records a refusal as an event. Only a storage failure is
// returned.
func applyOrRefuse(tx *store.Tx, rev uint64, c DesiredChange, w store.Write, res *DesiredResult, rules orderRules) error {
	err := applyChange(tx, c, w, rules)
	if err == nil {
		switch {
		case c.Kind == DesiredOrder:
			return nil // orders are history: a snapshot does not delete them
		case c.Deleted:
			return tx.UnsafeSetManaged(c.Kind, c.Key, 0)
		}
		return tx.UnsafeSetManaged(c.Kind, c.Key, rev)
	}
	e, ok := errs.AsError(err)
	if !ok || errors.Is(err, store.ErrCorrupt) {
		return fmt.Errorf("desired revision %d: %s %q: %w", rev, c.Kind, c.Key, err)
	}
	res.Refused++
	ev := refusedEvent(rev, c, e)
	if rules.machineEvents && c.Kind == DesiredOrder && !c.Deleted {
		ev.MachineID = orderMachineID(c.Object)
	}
	return event(tx, w, ev)
}

// orderMachineID is the machine an order object names ("" if it does not
// decode).
func orderMachineID(object json.RawMessage) string {
	var o struct {
		MachineID string `json:"machine_id"`
	}
	_ = json.Unmarshal(object, &o)
	return o.MachineID
}

// unnamedManaged returns deletes of the objects central manages that
// changes does not name, in key order.
func unnamedManaged(tx *store.Tx, changes []DesiredChange) []DesiredChange {
	named := make(map[string]bool, len(changes))
	for _, c := range changes {
		named[c.Kind+"/"+c.Key] = true
	}
	var out []DesiredChange
	for _, k := range tx.SyncManaged() {
		kind, key, ok := strings.Cut(k, "/")
		if ok && !named[k] {
			out = append(out, DesiredChange{Kind: kind, Key: key, Deleted: true})
		}
	}
	return out
}

// refusedEvent records a change of desired state that the site refused.
func refusedEvent(rev uint64, c DesiredChange, e *errs.Error) store.Event {
	kind, verb := "sync.change_refused", "put"
	if c.Deleted {
		verb = "delete"
	}
	ev := store.Event{Kind: kind, Message: fmt.Sprintf("desired revision %d: %s of %s %q refused: %s", rev, verb, c.Kind, c.Key, e.Error()),
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

// applyChange applies one change or returns the domain error that
// refuses it, having changed nothing.
func applyChange(tx *store.Tx, c DesiredChange, w store.Write, rules orderRules) error {
	switch c.Kind {
	case DesiredOrder:
		if c.Deleted {
			if err := orderEnded(tx, c.Key); err != nil {
				return err
			}
			return ignoreNotFound(tx.UnsafeDelete(&store.Order{}, c.Key, 0))
		}
		o, err := decodeDesired[store.Order](c, func(o *store.Order) *string { return &o.ID })
		if err != nil {
			return err
		}
		if _, err := store.Get[store.Order](tx, o.ID); err == nil {
			return nil // created before: the order follows its own course
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return createOrder(tx, o, w, rules)
	case DesiredMachine:
		return applyMachineChange(tx, c, w, rules)
	case DesiredImage:
		return applyObjectChange(tx, c, w, func(i *store.Image) *string { return &i.Name }, (*store.Image).Normalize)
	case DesiredTemplate:
		return applyObjectChange(tx, c, w, func(t *store.Template) *string { return &t.Name }, nil)
	}
	return errs.Invalid("kind", "%q is not a kind the appliance takes from central (order, machine, image, template)", c.Kind)
}

// applyMachineChange puts or deletes a machine of central's, with its
// event under rules that record them.
func applyMachineChange(tx *store.Tx, c DesiredChange, w store.Write, rules orderRules) error {
	if c.Deleted {
		err := tx.UnsafeDeleteMachine(c.Key, 0)
		if err != nil || !rules.machineEvents {
			return ignoreNotFound(err)
		}
		return machineDeletedEvent(tx, c.Key, w)
	}
	m, err := decodeDesired[store.Machine](c, func(m *store.Machine) *string { return &m.ID })
	if err != nil {
		return err
	}
	old, err := store.Get[store.Machine](tx, m.ID)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return err
	}
	if err := mergeDesiredMachine(tx, m, old); err != nil {
		return err
	}
	if err := tx.UnsafePutMachine(m, w); err != nil || !rules.machineEvents {
		return err
	}
	return machinePutEvent(tx, old, m, w)
}

// applyObjectChange puts or deletes an object that is stored as it comes.
func applyObjectChange[T any, P objectPtr[T]](tx *store.Tx, c DesiredChange, w store.Write, key func(P) *string, normalize func(P)) error {
	if c.Deleted {
		return ignoreNotFound(tx.UnsafeDelete(P(new(T)), c.Key, 0))
	}
	obj, err := decodeDesired[T](c, func(o *T) *string { return key(P(o)) })
	if err != nil {
		return err
	}
	if normalize != nil {
		normalize(P(obj))
	}
	if err := P(obj).Validate(); err != nil {
		return err
	}
	return tx.UnsafePut(P(obj), w)
}

// decodeDesired decodes a put's object; its key field, if empty, is the
// change's key, and must be it otherwise. The object's Meta is the
// store's: what central sent is dropped.
func decodeDesired[T any](c DesiredChange, key func(*T) *string) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(c.Object, v); err != nil {
		return nil, errs.Invalid("object", "does not decode as a %s: %v", c.Kind, err)
	}
	if m, ok := any(v).(interface{ ObjectMeta() *store.Meta }); ok {
		*m.ObjectMeta() = store.Meta{}
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

// mergeDesiredMachine keeps what the appliance owns of old, the stored
// machine (nil: none), in m (keepApplianceFields), normalizes and
// validates m.
func mergeDesiredMachine(tx *store.Tx, m, old *store.Machine) error {
	if m.BMC != nil && m.BMC.Password != "" {
		return errs.Invalid("bmc.password", "reached the store in the clear: the proposer seals it")
	}
	keepApplianceFields(m, old)
	if m.BMC != nil {
		m.BMC.PasswordSet = false
	}
	m.Normalize()
	return m.Validate()
}

// keepApplianceFields carries over from old, the stored machine (nil for
// a new one), what the appliance owns or keeps up to date, so that a put
// that does not name it does not erase it: the current workflow and the
// power state always (no client sets them); the state with its reason and
// the discovered hardware unless m names them; the sealed BMC password
// unless m brings a password of its own; and what the appliance knows of
// the BMC's certificate (keepBMCCertificate).
func keepApplianceFields(m, old *store.Machine) {
	m.Workflow, m.Power = "", ""
	keepBMCCertificate(m, old)
	if old == nil {
		return
	}
	m.Workflow, m.Power = old.Workflow, old.Power
	if m.State == "" {
		m.State, m.Reason = old.State, old.Reason
	}
	if m.Hardware == nil {
		m.Hardware = old.Hardware
	}
	if m.BMC != nil && m.BMC.Password == "" && len(m.BMC.SealedPassword) == 0 && old.BMC != nil {
		m.BMC.SealedPassword = old.BMC.SealedPassword
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	return err
}
