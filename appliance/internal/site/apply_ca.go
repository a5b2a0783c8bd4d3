package site

import (
	"fmt"
	"slices"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// The site's CA is rotated in two steps (internal/pki's package doc).
// begin moves generation g to g+1, g still trusted: it is refused while
// a rotation is under way, or when the proposer read another generation
// than the store holds (a concurrent begin). finish stops trusting g: it
// is refused unless a rotation to exactly that generation is under way
// and every member's record reports a certificate of it (each node
// renews its own and reports it, package cluster); the refusal names
// the members that have not. The check is made here, at apply, so that
// a member that joins or registers between the operator's request and
// the commit is counted.

func applySetCAGeneration(tx *store.Tx, payload []byte, index uint64) (any, error) {
	var req CARotation
	command.MustDecode(payload, &req, index)
	cur, err := tx.CA()
	if err != nil {
		return nil, err
	}
	next := *cur
	switch req.Step {
	case CABegin:
		err = checkBegin(cur, req.Generation)
		next.Generation, next.Previous = req.Generation, cur.Generation
	case CAFinish:
		err = checkFinish(tx, cur, req.Generation)
		next.Previous = 0
	default:
		err = errs.Invalid("step", "%q is not a step of a rotation: want %q or %q", req.Step, CABegin, CAFinish)
	}
	if err != nil {
		return nil, err
	}
	w := store.Write{Index: index, Time: req.Time, By: req.By}
	if err := tx.UnsafePut(&next, w); err != nil {
		return nil, err
	}
	return &next, event(tx, w, caEvent(req.Step, &next))
}

// checkBegin refuses a begin to generation gen from cur.
func checkBegin(cur *store.CA, gen uint64) error {
	switch {
	case cur.Previous != 0:
		return errs.Conflict("a rotation of the site's CA to generation %d is under way: finish it first", cur.Generation)
	case gen != cur.Generation+1:
		return errs.Conflict("the site's CA is at generation %d: a rotation goes to %d, not %d", cur.Generation, cur.Generation+1, gen)
	}
	return nil
}

// checkFinish refuses a finish of the rotation to gen from cur until
// every member reports a certificate of gen.
func checkFinish(tx *store.Tx, cur *store.CA, gen uint64) error {
	switch {
	case cur.Previous == 0:
		return errs.Conflict("no rotation of the site's CA is under way (generation %d): begin one first", cur.Generation)
	case gen != cur.Generation:
		return errs.Conflict("the rotation under way is to generation %d, not %d", cur.Generation, gen)
	}
	members, err := store.List[store.Member](tx)
	if err != nil {
		return err
	}
	var behind []string
	for _, m := range members {
		if m.Generation() != gen {
			behind = append(behind, fmt.Sprintf("%s (generation %d)", m.ID, m.Generation()))
		}
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		return errs.Conflict("members have not renewed their certificates under generation %d: %s; start them, or remove them, and try again",
			gen, strings.Join(behind, ", "))
	}
	return nil
}

// caEvent records a step of a rotation.
func caEvent(step string, ca *store.CA) store.Event {
	f := map[string]string{"generation": fmt.Sprint(ca.Generation)}
	msg := fmt.Sprintf("rotation of the site's CA finished: only generation %d is trusted", ca.Generation)
	if step == CABegin {
		f["previous"] = fmt.Sprint(ca.Previous)
		msg = fmt.Sprintf("rotation of the site's CA begun: generation %d is current, %d still trusted until the rotation is finished", ca.Generation, ca.Previous)
	}
	return store.Event{Kind: "cluster.ca_" + step, Message: msg, Fields: f}
}
