package site

import (
	"fmt"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// The objects that are stored as they come, with their events: subnets,
// images, templates, settings, members and tokens.

// objectPtr mirrors store's constraint for the generic appliers.
type objectPtr[T any] interface {
	*T
	store.Object
}

// applyPut stores a validated object at the command's index.
func applyPut[T any, P objectPtr[T]](tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Put[T]
	command.MustDecode(payload, &req, index)
	return putObject[T, P](tx, &req, index)
}

// putObject stores the object of a decoded Put, validated, at index.
func putObject[T any, P objectPtr[T]](tx *store.Tx, req *Put[T], index uint64) (any, error) {
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
	w := store.Write{Expect: req.Expect, Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePut(obj, w); err != nil {
		return nil, err
	}
	return obj, appendEvents(tx, req.Events, w)
}

// applyDelete removes an object that has no rule against its removal.
func applyDelete[T any, P objectPtr[T]](tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Delete
	command.MustDecode(payload, &req, index)
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	if err := tx.UnsafeDelete(P(new(T)), req.Key, req.Expect); err != nil {
		return nil, err
	}
	return nil, appendEvents(tx, req.Events, store.Write{Index: index, Time: req.Time, By: req.By})
}

func applyEvents(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req Events
	command.MustDecode(payload, &req, index)
	if len(req.Events) == 0 {
		return nil, errs.Invalid("events", "is empty")
	}
	if err := validateEvents(req.Events); err != nil {
		return nil, err
	}
	return nil, appendEvents(tx, req.Events, store.Write{Index: index, Time: req.Time, By: req.By})
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
// the command's index, time and actor. They were validated before any
// write.
func appendEvents(tx *store.Tx, events []store.Event, w store.Write) error {
	for _, e := range events {
		if err := event(tx, w, e); err != nil {
			return err
		}
	}
	return nil
}

// event records one event at w's index and time, by w's actor unless it
// names its own.
func event(tx *store.Tx, w store.Write, e store.Event) error {
	if e.By == "" {
		e.By = w.By
	}
	return tx.UnsafeAppendEvent(&e, w.Index, w.Time)
}
