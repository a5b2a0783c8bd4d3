package site

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// ca is where the rotation stands in e's store.
func (e *env) ca() *store.CA {
	var c *store.CA
	e.view(func(tx *store.Tx) (err error) { c, err = tx.CA(); return err })
	return c
}

// A store that records no rotation (b482c18's, today's) is at generation
// 1; a rotation begins to 2 with 1 still trusted, and finishes once every
// member reports a certificate of 2, naming those that do not until then.
func TestRotateCA(t *testing.T) {
	e := newEnv(t)
	if got := e.ca(); got.Generation != 1 || got.Previous != 0 {
		t.Fatalf("a fresh store's CA: %+v, want generation 1", got)
	}
	m1, m2 := fxMember("n1"), fxMember("n2")
	m1.CAGeneration = 0 // a record of an older release: generation 1
	e.applyOK(1, PutMember, Put[store.Member]{Object: m1, Time: ts0})
	e.applyOK(2, PutMember, Put[store.Member]{Object: m2, Time: ts0})
	e.applyOK(3, SetCAGeneration, CARotation{Step: CABegin, Generation: 2, Time: ts0, By: "alice"})
	want := &store.CA{Generation: 2, Previous: 1}
	if d := cmp.Diff(want, e.ca(), cmpopts.IgnoreFields(store.CA{}, "Meta")); d != "" {
		t.Fatalf("after begin (-want +got):\n%s", d)
	}

	r := e.applyCmd(4, SetCAGeneration, CARotation{Step: CAFinish, Generation: 2, Time: ts1})
	if r.Err == nil || r.Err.Code != errs.CodeConflict || !strings.Contains(r.Err.Message, "n1 (generation 1), n2 (generation 1)") {
		t.Fatalf("finish before anyone renewed: %+v, want a conflict naming n1 and n2", r.Err)
	}
	m1.CAGeneration = 2
	e.applyOK(5, PutMember, Put[store.Member]{Object: m1, Time: ts1})
	r = e.applyCmd(6, SetCAGeneration, CARotation{Step: CAFinish, Generation: 2, Time: ts1})
	if r.Err == nil || !strings.Contains(r.Err.Message, "n2 (generation 1)") || strings.Contains(r.Err.Message, "n1") {
		t.Fatalf("finish with n2 behind: %+v, want a conflict naming n2 alone", r.Err)
	}
	m2.CAGeneration = 2
	e.applyOK(7, PutMember, Put[store.Member]{Object: m2, Time: ts1})
	e.applyOK(8, SetCAGeneration, CARotation{Step: CAFinish, Generation: 2, Time: ts1, By: "alice"})
	want = &store.CA{Generation: 2}
	if d := cmp.Diff(want, e.ca(), cmpopts.IgnoreFields(store.CA{}, "Meta")); d != "" {
		t.Fatalf("after finish (-want +got):\n%s", d)
	}
	var events []*store.Event
	e.view(func(tx *store.Tx) (err error) { events, err = tx.EventsSince(0, 100); return err })
	var kinds []string
	for _, ev := range events {
		if strings.HasPrefix(ev.Kind, "cluster.ca_") {
			kinds = append(kinds, ev.Kind+" by "+ev.By)
		}
	}
	if d := cmp.Diff([]string{"cluster.ca_begin by alice", "cluster.ca_finish by alice"}, kinds); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// A step out of turn is refused, naming why, and changes nothing.
func TestRotateCARefused(t *testing.T) {
	tests := map[string]struct {
		setup []CARotation
		step  CARotation
		code  string
		says  string
	}{
		"finish with none under way": {step: CARotation{Step: CAFinish, Generation: 1}, code: errs.CodeConflict, says: "no rotation"},
		"begin twice":                {setup: []CARotation{{Step: CABegin, Generation: 2}}, step: CARotation{Step: CABegin, Generation: 3}, code: errs.CodeConflict, says: "under way"},
		"begin from a stale read":    {step: CARotation{Step: CABegin, Generation: 3}, code: errs.CodeConflict, says: "goes to 2, not 3"},
		"finish another generation":  {setup: []CARotation{{Step: CABegin, Generation: 2}}, step: CARotation{Step: CAFinish, Generation: 3}, code: errs.CodeConflict, says: "to generation 2, not 3"},
		"an unknown step":            {step: CARotation{Step: "abort", Generation: 2}, code: errs.CodeInvalid, says: `"abort" is not a step`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			for i, s := range tc.setup {
				e.applyOK(uint64(i+1), SetCAGeneration, s)
			}
			before := rawDump(t, e.db)
			idx := uint64(len(tc.setup) + 1)
			r := e.applyCmd(idx, SetCAGeneration, tc.step)
			if r.Err == nil || r.Err.Code != tc.code || !strings.Contains(r.Err.Message, tc.says) {
				t.Fatalf("result %+v, want %s saying %q", r.Err, tc.code, tc.says)
			}
			if d := cmp.Diff(withApplied(before, idx), rawDump(t, e.db)); d != "" {
				t.Errorf("a refused step changed the store (-before +after):\n%s", d)
			}
		})
	}
}
