package store

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func orderFor(id, machine string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"id":%q,"action":"power_cycle","machine_id":%q}`, id, machine))
}

func placeCmd(t *testing.T, audit *AuditEntry, orders ...OrderToPlace) []byte {
	return cmd(t, cmdPlaceOrders, &placeOrdersPayload{Orders: orders, Time: t0, By: "ops", Audit: audit})
}

// TestApplyPlaceOrders: orders for many sites in one apply make one
// revision per site, by the actor, carrying all of the site's orders;
// an unknown site and a differing order are refused alone; the audit
// entry is appended in the same apply.
func TestApplyPlaceOrders(t *testing.T) {
	d, _ := openTest(t)
	applyNext(t, d, base(t)...) // s1 at revision 2, with order o1
	applyNext(t, d, cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s2", CreatedAt: t0}}))
	audit := &AuditEntry{Time: t0, By: "ops", Role: "operator", Action: "order.place", Target: "b1-x", Status: 200}
	r := applyNext(t, d, placeCmd(t, audit,
		OrderToPlace{Site: "s1", Key: "b1-x-1", Object: orderFor("b1-x-1", "m1")},
		OrderToPlace{Site: "s2", Key: "b1-x-2", Object: orderFor("b1-x-2", "m2")},
		OrderToPlace{Site: "s1", Key: "b1-x-3", Object: orderFor("b1-x-3", "m3")},
		OrderToPlace{Site: "s9", Key: "b1-x-4", Object: orderFor("b1-x-4", "m4")},
		OrderToPlace{Site: "s1", Key: "o1", Object: orderFor("o1", "m9")},
	))[0]
	got, ok := r.(*OrdersPlaced)
	if !ok {
		t.Fatalf("result %#v", r)
	}
	want := &OrdersPlaced{AuditSeq: 1, Orders: []OrderPlaced{
		{Site: "s1", Key: "b1-x-1", Revision: 3},
		{Site: "s2", Key: "b1-x-2", Revision: 1},
		{Site: "s1", Key: "b1-x-3", Revision: 3},
		{Site: "s9", Key: "b1-x-4", Refused: `no site "s9"`},
		{Site: "s1", Key: "o1", Refused: `order "o1" exists and differs: an order cannot change once placed`},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("result (-want +got):\n%s", diff)
	}
	revs, err := d.NextRevisions("s1", 2, 10)
	if err != nil || len(revs) != 1 || revs[0].By != "ops" || len(revs[0].Changes) != 2 {
		t.Fatalf("s1's revisions after 2: %+v, %v", revs, err)
	}
	entries, err := d.Audit(AuditFilter{})
	if err != nil || len(entries) != 1 || entries[0].Seq != 1 || entries[0].Action != "order.place" {
		t.Fatalf("audit %+v, %v", entries, err)
	}

	// The same orders again change nothing and say where they are.
	before := dump(t, d)
	r = applyNext(t, d, placeCmd(t, nil, OrderToPlace{Site: "s1", Key: "b1-x-1", Object: orderFor("b1-x-1", "m1")}))[0]
	if got := r.(*OrdersPlaced).Orders[0]; got.Revision != 3 || got.Refused != "" {
		t.Errorf("placed again: %+v", got)
	}
	if diff := cmp.Diff(before, dump(t, d)); diff != "" {
		t.Errorf("placing again changed the state:\n%s", diff)
	}
	if code(applyNext(t, d, cmd(t, cmdPlaceOrders, &placeOrdersPayload{Time: t0}))[0]) == "" {
		t.Error("an empty placement was not refused")
	}
}

// TestPlaceOrdersProposer: the typed method checks each order before
// anything is proposed, and records the audit entry with the orders.
func TestPlaceOrdersProposer(t *testing.T) {
	d, _ := openTest(t)
	if _, err := d.CreateSite("s1", "", HashSecret("x")); err != nil {
		t.Fatal(err)
	}
	bad := []OrderToPlace{{Site: "s1", Key: "k", Object: json.RawMessage(`{"id":"k","action":"fly","machine_id":"m1"}`)}}
	if _, err := d.PlaceOrders("ops", bad, nil); err == nil || !strings.Contains(err.Error(), "action") {
		t.Errorf("a bad order: %v", err)
	}
	if _, err := d.PlaceOrders("ops", nil, nil); err == nil {
		t.Error("no orders were not refused")
	}
	res, err := d.PlaceOrders("ops", []OrderToPlace{{Site: "s1", Key: "k", Object: orderFor("k", "m1")}},
		&AuditEntry{By: "ops", Action: "order.place", Status: 200})
	if err != nil || res.Orders[0].Revision != 1 || res.AuditSeq != 1 {
		t.Fatalf("placed %+v, %v", res, err)
	}
	if e, _ := d.Audit(AuditFilter{}); len(e) != 1 || e[0].Time.IsZero() {
		t.Errorf("audit %+v", e)
	}
}

// TestAuditFilters: the audit's filters, its cursor, and a snapshot
// round trip of the bucket.
func TestAuditFilters(t *testing.T) {
	d, _ := openTest(t)
	entries := []AuditEntry{
		{By: "alice", Action: "order.place", Target: "s1/m1", Time: t0, Status: 200},
		{By: "bob", Action: "site.create", Target: "s2", Time: t0.Add(time.Minute), Status: 201},
		{By: "alice", Action: "order.put", Target: "s1/o2", Time: t0.Add(2 * time.Minute), Status: 403},
	}
	for _, e := range entries {
		if _, err := d.RecordAudit(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.RecordAudit(AuditEntry{Action: "x"}); err == nil {
		t.Error("an entry without its actor was recorded")
	}
	seqs := func(f AuditFilter) []uint64 {
		got, err := d.Audit(f)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, e := range got {
			out = append(out, e.Seq)
		}
		return out
	}
	tests := map[string]struct {
		f    AuditFilter
		want []uint64
	}{
		"all":          {AuditFilter{}, []uint64{1, 2, 3}},
		"by":           {AuditFilter{By: "alice"}, []uint64{1, 3}},
		"action glob":  {AuditFilter{Action: "order.*"}, []uint64{1, 3}},
		"target exact": {AuditFilter{Target: "s2"}, []uint64{2}},
		"since until":  {AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}, []uint64{2}},
		"after limit":  {AuditFilter{After: 1, Limit: 1}, []uint64{2}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, seqs(tc.f)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	restored, _ := openTest(t)
	if err := restored.Restore(snapshotOf(t, d)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dump(t, d), dump(t, restored)); diff != "" {
		t.Errorf("restored state (-source +restored):\n%s", diff)
	}
	if n, err := restored.RecordAudit(AuditEntry{By: "carol", Action: "token.create", Status: 201}); err != nil || n != 4 {
		t.Errorf("the restored audit's next entry: %d, %v", n, err)
	}
}

// TestAuditBounded: past keepAudit entries, each append forgets the
// oldest.
func TestAuditBounded(t *testing.T) {
	d, _ := openTest(t)
	var cmds [][]byte
	for i := 0; i < 3; i++ {
		cmds = append(cmds, cmd(t, cmdRecordAudit, &recordAuditPayload{Entry: &AuditEntry{By: "a", Action: "x", Time: t0}}))
	}
	applyNext(t, d, cmds...)
	// Pretend the audit is full: entries keepAudit-1 .. keepAudit+... are
	// simulated by moving the last sequence.
	if err := d.update(func(tx *bolt.Tx) error {
		return put(tx.Bucket(bucketAudit), u64(keepAudit), &AuditEntry{Seq: keepAudit, By: "a", Action: "x", Time: t0})
	}); err != nil {
		t.Fatal(err)
	}
	applyNext(t, d, cmd(t, cmdRecordAudit, &recordAuditPayload{Entry: &AuditEntry{By: "a", Action: "y", Time: t0}}))
	got, _ := d.Audit(AuditFilter{Limit: 10})
	var seqs []uint64
	for _, e := range got {
		seqs = append(seqs, e.Seq)
	}
	if diff := cmp.Diff([]uint64{2, 3, keepAudit, keepAudit + 1}, seqs); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
