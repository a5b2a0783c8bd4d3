package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/raftnode"
)

// localProposer commits each command as a one-entry log, in order: the
// store as a cluster of one node, whose proposals pass the check.
type localProposer struct {
	db       *DB
	index    atomic.Uint64
	proposed atomic.Int64
}

func (p *localProposer) Propose(_ context.Context, cmd []byte) (uint64, any, error) {
	p.proposed.Add(1)
	idx := p.index.Add(1)
	out, err := p.db.Apply([]raftnode.Entry{{Index: idx, Data: cmd}})
	if err != nil {
		return 0, nil, err
	}
	return idx, out[0], nil
}

// This release's types: up to 29 (annotations), the last release's up
// to 28; every type above that one has a name for an operator.
func TestHighestCommand(t *testing.T) {
	if got := HighestCommand(); got != 29 {
		t.Errorf("HighestCommand() = %d, want 29", got)
	}
	if LastUnreported != 28 {
		t.Errorf("LastUnreported = %d, want 28 (release 75c47a5's highest)", LastUnreported)
	}
	for typ := range table {
		if base := typ &^ command.IgnoreUnknown; typ != cmdLegacyJSON && base > LastUnreported {
			if _, ok := commandNames[base]; !ok {
				t.Errorf("command type %d has no name in commandNames", base)
			}
		}
	}
	if got := CommandName(cmdAddAnnotation); got != "annotations" {
		t.Errorf("CommandName(annotation) = %q", got)
	}
}

// A replicated store proposes an annotation only once its check
// passes: refused, nothing is proposed and nothing recorded, and the
// refusal is the check's error as is; the types of the last release
// are proposed without asking; a store without a proposer (a single
// central) checks nothing.
func TestCommandCheck(t *testing.T) {
	db, _ := openTest(t)
	refusal := &errs.Error{Code: "unavailable", Message: "central is mid-upgrade: node c2 does not apply annotations yet"}
	var asked []command.Type
	db.SetCommandCheck(func(_ context.Context, typ command.Type) error {
		asked = append(asked, typ)
		return refusal
	})
	// No proposer: a single central, no check.
	a := Annotation{Kind: "power", Start: time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)}
	if _, err := db.AddAnnotation(a); err != nil || len(asked) != 0 {
		t.Fatalf("a single central's annotation: %v, checked %v", err, asked)
	}
	p := &localProposer{db: db}
	db.SetProposer(p)
	if _, err := db.AddAnnotation(a); !errors.Is(err, refusal) {
		t.Fatalf("annotation while the check refuses: %v, want the check's refusal", err)
	}
	if got, _ := db.Annotations(AnnotationFilter{}); len(got) != 1 || p.proposed.Load() != 0 {
		t.Fatalf("after the refusal: %d annotations (want the first only), %d proposed", len(got), p.proposed.Load())
	}
	if _, err := db.CreateSite("fra-1", "Frankfurt", HashSecret("x")); err != nil || len(asked) != 1 || asked[0] != 29 {
		t.Fatalf("a site (type 1) while the check refuses: %v; checked types %v, want [29]", err, asked)
	}
	db.SetCommandCheck(func(context.Context, command.Type) error { return nil })
	if _, err := db.AddAnnotation(a); err != nil {
		t.Fatalf("annotation once the check passes: %v", err)
	}
	if got, _ := db.Annotations(AnnotationFilter{}); len(got) != 2 {
		t.Errorf("%d annotations, want 2", len(got))
	}
}
