package replica

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// applyFunc applies one command's payload inside the batch's transaction.
// A returned *errs.Error refuses the command (and it must then have changed
// nothing); any other error is a storage failure.
type applyFunc func(tx *store.Tx, payload []byte, index uint64) (any, error)

// applyTable dispatches by command type. Append-only, like the types.
var applyTable = map[Type]applyFunc{
	PutMachine:      applyPut[store.Machine],
	DeleteMachine:   applyDelete[store.Machine],
	PutSubnet:       applyPut[store.Subnet],
	DeleteSubnet:    applyDelete[store.Subnet],
	PutLease:        applyPut[store.Lease],
	DeleteLease:     applyDelete[store.Lease],
	PutImage:        applyPut[store.Image],
	DeleteImage:     applyDelete[store.Image],
	PutTemplate:     applyPut[store.Template],
	DeleteTemplate:  applyDelete[store.Template],
	PutWorkflow:     applyPut[store.Workflow],
	DeleteWorkflow:  applyDelete[store.Workflow],
	AppendEvents:    applyEvents,
	PutSettings:     applyPut[store.Settings],
	PutMember:       applyPut[store.Member],
	DeleteMember:    applyDelete[store.Member],
	PutToken:        applyPut[store.Token],
	DeleteToken:     applyDelete[store.Token],
	Noop:            func(*store.Tx, []byte, uint64) (any, error) { return nil, nil },
	AdvanceWorkflow: applyAdvanceWorkflow,
	Discover:        applyDiscover,
	PutOrder:        applyPut[store.Order],
	DeleteOrder:     applyDelete[store.Order],
	DeleteJob:       applyDelete[store.Job],
	StartJob:        applyStartJob,
	FinishJob:       applyFinishJob,
	SetPower:        applySetPower,
	ApplyDesired:    applyApplyDesired,
	SyncAcked:       applySyncAcked,
}

// objectPtr mirrors store's constraint for the generic appliers.
type objectPtr[T any] interface {
	*T
	store.Object
}

// mustDecode decodes a payload or panics: the log holds only what Encode
// wrote, so a payload that does not decode means damage or a version skew
// that must stop the node rather than fork it.
func mustDecode(payload []byte, v any, index uint64) {
	if err := json.Unmarshal(payload, v); err != nil {
		panic(fmt.Sprintf("replica: decode command at index %d: %v", index, err))
	}
}

func applyPut[T any, P objectPtr[T]](tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[T]
	mustDecode(payload, &req, index)
	if req.Object == nil {
		return nil, errs.Invalid("object", "is required")
	}
	obj := P(req.Object)
	if err := obj.Validate(); err != nil {
		return nil, err
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	if err := tx.UnsafePut(obj, store.Write{Expect: req.Expect, Index: index, Time: req.Time}); err != nil {
		return nil, err
	}
	if err := appendEvents(tx, req.Events, index, req.Time); err != nil {
		return nil, err
	}
	return obj, nil
}

func applyDelete[T any, P objectPtr[T]](tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Delete
	mustDecode(payload, &req, index)
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	if err := tx.UnsafeDelete(P(new(T)), req.Key, req.Expect); err != nil {
		return nil, err
	}
	return nil, appendEvents(tx, req.Events, index, req.Time)
}

func applyEvents(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Events
	mustDecode(payload, &req, index)
	if len(req.Events) == 0 {
		return nil, errs.Invalid("events", "is empty")
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	return nil, appendEvents(tx, req.Events, index, req.Time)
}

func validateEvents(events []store.Event) error {
	for i := range events {
		if err := events[i].Validate(); err != nil {
			e, _ := errs.AsError(err)
			return errs.Invalid(fmt.Sprintf("events[%d].%s", i, e.Field), "%s", e.Message)
		}
	}
	return nil
}

// appendEvents records the events that came with a command, stamped with
// the command's index and time. They were validated before any write.
func appendEvents(tx *store.Tx, events []store.Event, index uint64, t time.Time) error {
	for i := range events {
		e := events[i]
		if err := tx.UnsafeAppendEvent(&e, index, t); err != nil {
			return err
		}
	}
	return nil
}
