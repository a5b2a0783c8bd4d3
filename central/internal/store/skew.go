package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/outposthq/outpost/internal/command"
)

// A replicated central is upgraded node by node, so for a while its
// leader runs a newer release than some of its followers. A command type
// an older follower does not know either stops it (a plain type) or is
// skipped by it (command.IgnoreUnknown): either way, what the leader
// acknowledged would not be on that node, and would be gone once it
// leads. So a command of a type above LastUnreported is proposed only
// once every member says it applies that type (CommandCheck, installed
// by package cluster), and refused otherwise, committing nothing.

// LastUnreported is the highest command type of the last release whose
// nodes do not say which types they apply (release 75c47a5: a member of
// that release answers 404 at cluster.CommandsPath). Every node of a
// cluster applies the types up to it; a type above it is proposed only
// once every member says it applies it.
const LastUnreported = cmdAddSpans

// HighestCommand is the highest command type this release applies,
// without its command.IgnoreUnknown bit: what this node tells its
// members it applies. The legacy type '{' (replay of release b482c18
// only) does not count.
var HighestCommand = sync.OnceValue(func() command.Type {
	var highest command.Type
	for t := range table {
		if t != cmdLegacyJSON {
			highest = max(highest, t&^command.IgnoreUnknown)
		}
	}
	return highest
})

// commandNames names, for an operator, what each command type above
// LastUnreported records: a refusal while central is mid-upgrade says
// which change a node does not apply yet (CommandName). Every such type
// has a name (TestEveryNewCommandIsNamed).
var commandNames = map[command.Type]string{
	cmdAddAnnotation &^ command.IgnoreUnknown: "annotations",
}

// CommandName says what command type t (without its IgnoreUnknown bit)
// records, as "annotations", for an operator's message.
func CommandName(t command.Type) string {
	if name, ok := commandNames[t&^command.IgnoreUnknown]; ok {
		return name
	}
	return fmt.Sprintf("commands of type %d", t&^command.IgnoreUnknown)
}

// CommandCheck is a replicated central's check, made on its leader
// before a command of type t (above LastUnreported, without its
// IgnoreUnknown bit) is proposed, that every member applies t: nil, or
// the error to refuse the change with (an *errs.Error an API answers
// as is). Package cluster installs it (SetCommandCheck).
type CommandCheck func(ctx context.Context, t command.Type) error

// SetCommandCheck makes every proposal of a type above LastUnreported
// pass check first. A store without one (a single central) checks
// nothing.
func (d *DB) SetCommandCheck(check CommandCheck) { d.check.Store(&check) }

// checkKnown runs the command check, if any, for a proposal of type t.
func (d *DB) checkKnown(ctx context.Context, t command.Type) error {
	base := t &^ command.IgnoreUnknown
	check := d.check.Load()
	if base <= LastUnreported || check == nil {
		return nil
	}
	return (*check)(ctx, base)
}
