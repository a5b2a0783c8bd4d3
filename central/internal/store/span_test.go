package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

const traceA = "0af7651916cd43dd8448eb211c80319c"

// Spans are kept once each (a batch sent again adds nothing), a trace is
// read back by start, and a provision's waterfall is reported complete
// once: when its first boot's metadata request arrives, even after the
// rest of its trace, and never again.
func TestAddSpans(t *testing.T) {
	db, _ := openTest(t)
	spans := centraltest.ProvisionTrace(traceA, time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	last := len(spans) - 1
	got, err := db.AddSpans(spans[:last])
	if err != nil {
		t.Fatal(err)
	}
	if got.Added != last || len(got.Completed) != 0 {
		t.Fatalf("first part: added %d, completed %v; want %d, none", got.Added, got.Completed, last)
	}
	if got, err = db.AddSpans(spans[:last]); err != nil || got.Added != 0 {
		t.Fatalf("the same spans again: added %d (%v), want 0", got.Added, err)
	}
	got, err = db.AddSpans(spans[last:])
	if err != nil {
		t.Fatal(err)
	}
	if got.Added != 1 || len(got.Completed) != 1 || got.Completed[0].TraceID != traceA || len(got.Completed[0].Phases) != len(tracing.PhaseNames) {
		t.Fatalf("the metadata request: %+v, want the trace completed with every phase", got)
	}
	// A span of the trace that arrives later does not complete it again.
	late := spans[2]
	late.SpanID, late.Name = "00000000000000ff", "bmc.boot_pxe"
	if got, err = db.AddSpans([]tracing.Span{late}); err != nil || got.Added != 1 || len(got.Completed) != 0 {
		t.Fatalf("a late span: %+v (%v), want added and not completed again", got, err)
	}
	trace, err := db.Trace(traceA)
	if err != nil {
		t.Fatal(err)
	}
	if len(trace) != len(spans)+1 || trace[0].Name != tracing.SpanOrderPlace || !tracing.Check(trace).Complete {
		t.Fatalf("trace: %d spans, first %q, want %d from order.place, complete", len(trace), trace[0].Name, len(spans)+1)
	}
	if other, err := db.Trace(strings.Repeat("1", 32)); err != nil || len(other) != 0 {
		t.Fatalf("an unknown trace: %v, %v; want none", other, err)
	}
	if _, err := db.Trace("nope"); !errors.Is(err, errs.ErrInvalid) {
		t.Fatalf("a malformed trace id: %v, want invalid", err)
	}
	if n, _ := db.SpanCount(); n != len(spans)+1 {
		t.Fatalf("count %d, want %d", n, len(spans)+1)
	}
}

// A bad span refuses the call naming it; nothing of the call is kept.
func TestAddSpansRefusesBadSpan(t *testing.T) {
	db, _ := openTest(t)
	spans := centraltest.ProvisionTrace(traceA, time.Now())
	spans[3].End = spans[3].Start.Add(-time.Second)
	_, err := db.AddSpans(spans)
	if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), "spans[3]") || !strings.Contains(err.Error(), spans[3].Name) {
		t.Fatalf("err %v, want invalid naming spans[3] (%s)", err, spans[3].Name)
	}
	if n, _ := db.SpanCount(); n != 0 {
		t.Fatalf("%d spans kept, want none", n)
	}
}

// Beyond the bound the oldest spans are dropped, with the mark of a
// trace that has no span left; the count stays at the bound. Spans
// survive a reopen and a snapshot's restore.
func TestAddSpansBounded(t *testing.T) {
	db, path := openTest(t)
	mk := func(trace, id int) tracing.Span {
		t0 := time.Date(2026, 12, 7, 10, 0, id, 0, time.UTC)
		return tracing.Span{TraceID: fmt.Sprintf("%032x", trace), SpanID: fmt.Sprintf("%016x", id), Name: "x", Service: "s", Start: t0, End: t0}
	}
	whole := centraltest.ProvisionTrace(traceA, time.Now())
	if _, err := db.addSpans(whole, 20); err != nil {
		t.Fatal(err)
	}
	var batch []tracing.Span
	for i := 1; i <= 25; i++ {
		batch = append(batch, mk(1+i%2, i))
	}
	if _, err := db.addSpans(batch, 20); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.SpanCount(); n != 20 {
		t.Fatalf("count %d, want the bound, 20", n)
	}
	if tr, _ := db.Trace(traceA); len(tr) != 0 {
		t.Fatalf("the oldest trace keeps %d spans, want none", len(tr))
	}
	var marks int
	_ = db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSpans).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if isMarker(k) {
				marks++
			}
		}
		return nil
	})
	if marks != 0 {
		t.Fatalf("%d marks of dropped traces left, want none", marks)
	}
	one, _ := db.Trace(fmt.Sprintf("%032x", 1))
	two, _ := db.Trace(fmt.Sprintf("%032x", 2))
	if len(one)+len(two) != 20 || one[0].SpanID != fmt.Sprintf("%016x", 6) && two[0].SpanID != fmt.Sprintf("%016x", 6) {
		t.Fatalf("kept %d+%d spans, want the newest 20 (from span 6)", len(one), len(two))
	}

	var snap bytes.Buffer
	s, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteTo(&snap); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if _, err := db.AddSpans([]tracing.Span{mk(3, 99)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if n, _ := db2.SpanCount(); n != 20 {
		t.Fatalf("after restore and reopen: %d spans, want 20", n)
	}
	if tr, _ := db2.Trace(fmt.Sprintf("%032x", 3)); len(tr) != 0 {
		t.Fatalf("a span added after the snapshot survived its restore")
	}
}

// Spans go through the log like any change: two replicas applying the
// same entries (the bound reached, a provision completed) hold the same
// state, the provision's completion is the result of its entry on each,
// and a replica restored from the other's snapshot holds it too (central
// fails over with its traces).
func TestAddSpansReplicated(t *testing.T) {
	spans := centraltest.ProvisionTrace(traceA, t0)
	extra := make([]tracing.Span, 10)
	for i := range extra {
		extra[i] = tracing.Span{TraceID: fmt.Sprintf("%032x", 7), SpanID: fmt.Sprintf("%016x", i+1), Name: "dhcp.exchange", Service: "applianced", Start: t0, End: t0}
	}
	entries := [][]byte{
		cmd(t, cmdAddSpans, &addSpansPayload{Spans: spans[:5], Max: 18}),
		cmd(t, cmdAddSpans, &addSpansPayload{Spans: extra, Max: 18}),
		cmd(t, cmdAddSpans, &addSpansPayload{Spans: spans[5:], Max: 18}),
	}
	a, _ := openTest(t)
	b, _ := openTest(t)
	for _, d := range []*DB{a, b} {
		out := applyNext(t, d, entries...)
		if got := out[2].(*SpansAdded); got.Added != len(spans)-5 || len(got.Completed) != 1 {
			t.Fatalf("the last entry: %+v, want the provision completed", got)
		}
	}
	if diff := cmp.Diff(dump(t, a), dump(t, b)); diff != "" {
		t.Fatalf("replicas differ (-a +b):\n%s", diff)
	}
	if n, _ := a.SpanCount(); n != 18 {
		t.Fatalf("%d spans, want the bound, 18", n)
	}
	c, _ := openTest(t)
	if err := c.Restore(snapshotOf(t, a)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dump(t, a), dump(t, c)); diff != "" {
		t.Fatalf("restored replica differs (-a +c):\n%s", diff)
	}
	tr, err := c.Trace(traceA)
	if err != nil || len(tr) != len(spans)-5 {
		t.Fatalf("trace on the restored replica: %d spans, %v; want the %d kept", len(tr), err, len(spans)-5)
	}
}

// The spans that name a machine (its site's, its installer's, central's
// order.place) count on its record when they are of its last order's
// trace: the fleet changes, and a page following it redraws the
// waterfall. Spans of another trace, or sent again, count nothing.
func TestSpansCountOnMachine(t *testing.T) {
	d := fleetStore(t)
	tp := "00-" + traceA + "-00f067aa0ba902b7-01"
	obj := json.RawMessage(`{"id":"o1","action":"provision","machine_id":"m1","image":"debian-12","traceparent":"` + tp + `"}`)
	if _, err := d.PlaceOrders("ops", []OrderToPlace{{Site: "s1", Key: "o1", Object: obj}}, nil); err != nil {
		t.Fatal(err)
	}
	m, _ := d.Fleet().Machine("s1", "m1")
	if m.LastOrder.TraceID != traceA || m.LastOrder.Spans != 0 {
		t.Fatalf("placed: %+v, want trace %s and no spans", m.LastOrder, traceA)
	}
	spans := centraltest.ProvisionTrace(traceA, t0)
	for i := range spans {
		spans[i].Attrs = map[string]string{tracing.AttrSite: "s1", tracing.AttrMachine: "m1"}
	}
	// The installer's names its machine as its node (its site is the
	// hub's, which sets it on every span of a site).
	spans[8].Attrs, spans[8].Service, spans[8].Node = map[string]string{tracing.AttrSite: "s1"}, "outpost-agent", "m1"
	spans[9].Attrs = map[string]string{tracing.AttrSite: "s1"} // names no machine
	other := tracing.Span{TraceID: strings.Repeat("2", 32), SpanID: strings.Repeat("3", 16), Name: "x", Service: "applianced", Start: t0, End: t0,
		Attrs: map[string]string{tracing.AttrSite: "s1", tracing.AttrMachine: "m1"}}
	version := d.Fleet().Version()
	if _, err := d.AddSpans(append(spans[:5:5], other)); err != nil {
		t.Fatal(err)
	}
	if m, _ = d.Fleet().Machine("s1", "m1"); m.LastOrder.Spans != 5 || d.Fleet().Version() == version {
		t.Fatalf("after 5 spans of its trace: %d counted, version %d (was %d)", m.LastOrder.Spans, d.Fleet().Version(), version)
	}
	if _, err := d.AddSpans(spans); err != nil {
		t.Fatal(err)
	}
	if m, _ = d.Fleet().Machine("s1", "m1"); m.LastOrder.Spans != len(spans)-1 {
		t.Fatalf("after the whole trace: %d counted, want %d (one names no machine)", m.LastOrder.Spans, len(spans)-1)
	}
}
