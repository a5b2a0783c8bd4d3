package site

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// LastUnreported is the highest command type of the last release whose
// nodes did not report which types they apply (store.Member.Commands):
// every node of a site knows the types up to it. A type above it is
// proposed only once every member reports knowing it, so that a site
// upgraded node by node never commits a command an old node cannot
// apply (an old node stops at a type it does not know, and two of three
// stopped would halt the site).
const LastUnreported = PutMachineV2

// ErrUnknownToMember is the error of a proposal of a command type a
// member of the site does not apply yet (it runs an older release).
var ErrUnknownToMember = errors.New("site: a member's release does not apply this command type")

// HighestCommand is the highest command type this release applies.
var HighestCommand = sync.OnceValue(func() Type {
	return slices.Max(slices.Collect(func(yield func(Type) bool) {
		for t := range table {
			if !yield(t) {
				return
			}
		}
	}))
})

// checkKnown returns nil if every member of the site, as the store
// records them, applies command type t; else an error wrapping
// ErrUnknownToMember naming the first that does not. A type up to
// LastUnreported is known to all.
func (p *Proposer) checkKnown(t Type) error {
	if t <= LastUnreported {
		return nil
	}
	var ms []*store.Member
	if err := p.cfg.Store.View(func(tx *store.Tx) (err error) {
		ms, err = store.List[store.Member](tx)
		return err
	}); err != nil {
		return fmt.Errorf("site: read the members for command type %d: %w", t, err)
	}
	for _, m := range ms {
		if Type(m.Commands) < t {
			return fmt.Errorf("%w: command type %d is unknown to node %s (it reports types up to %d): not proposed until every node is upgraded",
				ErrUnknownToMember, t, m.ID, max(Type(m.Commands), LastUnreported))
		}
	}
	return nil
}
