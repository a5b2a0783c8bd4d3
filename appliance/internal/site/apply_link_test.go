package site

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// link is the link to central as e's store records it (nil: unknown).
func (e *env) link() *store.Link {
	var l *store.Link
	e.view(func(tx *store.Tx) (err error) { l, err = tx.Link(); return err })
	return l
}

// A store without a report reads as unknown; a report is recorded as
// given, and a newer leader's replaces it whatever its clock says.
func TestRecordLink(t *testing.T) {
	e := newEnv(t)
	if l := e.link(); l != nil {
		t.Fatalf("a fresh store's link: %+v, want none (unknown)", l)
	}
	up := LinkReport{Node: "n1", Connected: true, Since: ts0, LastSync: ts0, Central: "wss://central.example/v1/sync", Time: ts0, By: ActorSync}
	e.applyOK(1, RecordLink, up)
	down := LinkReport{Node: "n1", Since: ts1, LastSync: ts0, LastError: "read: EOF", Central: up.Central, Time: ts1}
	e.applyOK(2, RecordLink, down)
	want := &store.Link{Node: "n1", Since: ts1, LastSync: ts0, LastError: "read: EOF", Central: up.Central}
	if d := cmp.Diff(want, e.link(), cmpopts.IgnoreFields(store.Link{}, "Meta")); d != "" {
		t.Fatalf("after the link went down (-want +got):\n%s", d)
	}
	// n2 leads now; its clock lags n1's by a second.
	up2 := LinkReport{Node: "n2", Connected: true, Since: ts1.Add(-time.Second), Central: up.Central, Time: ts1.Add(-time.Second)}
	e.applyOK(3, RecordLink, up2)
	got := e.link()
	if !got.Connected || got.Node != "n2" || got.Version != 3 {
		t.Fatalf("after n2 connected: %+v, want connected, reported by n2 at version 3", got)
	}
}

// A report that does not validate, names a URL with credentials, or is
// older than its node's recorded one is refused and changes nothing.
func TestRecordLinkRefusals(t *testing.T) {
	const central = "wss://central.example/v1/sync"
	tests := map[string]struct {
		report LinkReport
		code   string
		want   string
	}{
		"no node":               {LinkReport{Connected: true, Since: ts1, Central: central, Time: ts1}, errs.CodeInvalid, "node"},
		"no since":              {LinkReport{Node: "n1", Connected: true, Central: central, Time: ts1}, errs.CodeInvalid, "since"},
		"connected with error":  {LinkReport{Node: "n1", Connected: true, Since: ts1, LastError: "x", Central: central, Time: ts1}, errs.CodeInvalid, "last_error"},
		"down without a reason": {LinkReport{Node: "n1", Since: ts1, Central: central, Time: ts1}, errs.CodeInvalid, "last_error"},
		"error too long":        {LinkReport{Node: "n1", Since: ts1, LastError: strings.Repeat("x", store.MaxLinkError+1), Central: central, Time: ts1}, errs.CodeInvalid, "last_error"},
		"no central":            {LinkReport{Node: "n1", Connected: true, Since: ts1, Time: ts1}, errs.CodeInvalid, "central"},
		"credentials in the URL": {LinkReport{Node: "n1", Connected: true, Since: ts1, Central: "wss://site:secret@central.example/v1/sync", Time: ts1},
			errs.CodeInvalid, "credentials"},
		"a query in the URL": {LinkReport{Node: "n1", Connected: true, Since: ts1, Central: central + "?token=secret", Time: ts1}, errs.CodeInvalid, "query"},
		"older than the node's last": {LinkReport{Node: "n1", Since: ts0.Add(-time.Minute), LastError: "late", Central: central, Time: ts0.Add(-time.Second)},
			errs.CodeConflict, "older than the recorded one"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.applyOK(1, RecordLink, LinkReport{Node: "n1", Connected: true, Since: ts0, Central: central, Time: ts0})
			before := rawDump(t, e.db)
			r := e.applyCmd(2, RecordLink, tc.report)
			if r.Err == nil || r.Err.Code != tc.code || !strings.Contains(r.Err.Error(), tc.want) {
				t.Fatalf("refusal: %+v, want %s naming %q", r.Err, tc.code, tc.want)
			}
			if d := cmp.Diff(withApplied(before, 2), rawDump(t, e.db)); d != "" {
				t.Errorf("a refused report changed the store (-before +after):\n%s", d)
			}
		})
	}
}
