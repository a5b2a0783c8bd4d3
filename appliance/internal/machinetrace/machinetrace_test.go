package machinetrace_test

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

const (
	tp1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tp2 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// fixture is a store with a subnet, a template and machines m1 (MAC
// 02:00:00:00:00:01, reserving 198.18.0.11) and m2 (02:00:00:00:00:02).
type fixture struct {
	db  *store.DB
	idx *machinetrace.Index
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{db: openStore(t), now: t0}
	m1 := apptest.Machine("m1", 1)
	m1.Interfaces[0].IP, m1.Interfaces[0].Subnet = "198.18.0.11", "lab"
	apptest.Put(t, f.db, t0,
		&store.Subnet{Name: "lab", CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.200"}}},
		&store.Template{Name: "install", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}},
		m1, apptest.Machine("m2", 2))
	f.idx = machinetrace.New(f.db, machinetrace.Config{Now: func() time.Time { return f.now }})
	return f
}

func openStore(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (f *fixture) workflow(t *testing.T, id, machine, tp string) {
	t.Helper()
	apptest.Put(t, f.db, t0, &store.Workflow{ID: id, MachineID: machine, Template: "install", Traceparent: tp})
}

func (f *fixture) machine(t *testing.T, id string) (machinetrace.Trace, error) {
	t.Helper()
	var tr machinetrace.Trace
	err := f.db.View(func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, id)
		if err != nil {
			return err
		}
		tr, err = f.idx.Machine(tx, m)
		return err
	})
	return tr, err
}

// A machine is traced under its latest workflow's traceparent, found by
// the machine, its MAC or its address; a machine without a workflow, or
// whose workflow has no traceparent, is not traced.
func TestLookups(t *testing.T) {
	f := newFixture(t)
	f.workflow(t, "wf1", "m1", tp1)
	f.workflow(t, "wf2", "m2", "")
	apptest.Put(t, f.db, t0, &store.Lease{IP: "198.18.0.150", MAC: "02:00:00:00:00:02", Subnet: "lab", State: store.LeaseActive,
		Starts: t0, Expires: t0.Add(time.Hour)})
	want1 := machinetrace.Trace{Traceparent: tp1, Machine: "m1", Workflow: "wf1"}
	byMAC1 := want1
	byMAC1.MAC = "02:00:00:00:00:01"
	tests := map[string]struct {
		lookup func() (machinetrace.Trace, error)
		want   machinetrace.Trace
	}{
		"machine":             {func() (machinetrace.Trace, error) { return f.machine(t, "m1") }, want1},
		"MAC":                 {func() (machinetrace.Trace, error) { return f.idx.ForMAC("02:00:00:00:00:01") }, byMAC1},
		"reserved address":    {func() (machinetrace.Trace, error) { return f.idx.ForAddr(netip.MustParseAddr("198.18.0.11")) }, byMAC1},
		"IPv4-mapped address": {func() (machinetrace.Trace, error) { return f.idx.ForAddr(netip.MustParseAddr("::ffff:198.18.0.11")) }, byMAC1},
		"untraced workflow":   {func() (machinetrace.Trace, error) { return f.machine(t, "m2") }, machinetrace.Trace{Machine: "m2", Workflow: "wf2"}},
		"leased, untraced":    {func() (machinetrace.Trace, error) { return f.idx.ForAddr(netip.MustParseAddr("198.18.0.150")) }, machinetrace.Trace{Machine: "m2", Workflow: "wf2", MAC: "02:00:00:00:00:02"}},
		"unknown MAC":         {func() (machinetrace.Trace, error) { return f.idx.ForMAC("02:00:00:00:00:99") }, machinetrace.Trace{}},
		"nobody's address":    {func() (machinetrace.Trace, error) { return f.idx.ForAddr(netip.MustParseAddr("198.18.0.99")) }, machinetrace.Trace{}},
		"machine with no workflow": {func() (machinetrace.Trace, error) {
			apptest.Put(t, f.db, t0, apptest.Machine("m3", 3))
			return f.machine(t, "m3")
		}, machinetrace.Trace{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tc.lookup()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trace (-want +got):\n%s", diff)
			}
			if got.Traced() != (tc.want.Traceparent != "") {
				t.Errorf("Traced() = %v", got.Traced())
			}
		})
	}
}

// A trace found by address is taken as found for AddrTTL, then looked
// up again; lookups by machine and MAC always read the store.
func TestAddrTTL(t *testing.T) {
	f := newFixture(t)
	f.workflow(t, "wf1", "m1", tp1)
	addr := netip.MustParseAddr("198.18.0.11")
	byAddr := func() string {
		t.Helper()
		tr, err := f.idx.ForAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Traceparent
	}
	if got := byAddr(); got != tp1 {
		t.Fatalf("by address: %q, want %q", got, tp1)
	}
	apptest.Apply(t, f.db, site.AdvanceWorkflow, site.Advance{Workflow: "wf1", Kind: site.AdvanceCancel, Reason: "test", Time: f.now})
	f.workflow(t, "wf2", "m1", tp2)
	f.now = f.now.Add(machinetrace.AddrTTL - time.Millisecond)
	if got := byAddr(); got != tp1 {
		t.Errorf("by address within the TTL: %q, want the trace found, %q", got, tp1)
	}
	if got, err := f.idx.ForMAC("02:00:00:00:00:01"); err != nil || got.Traceparent != tp2 {
		t.Errorf("by MAC: %+v, %v; want %q", got, err, tp2)
	}
	f.now = f.now.Add(time.Millisecond)
	if got := byAddr(); got != tp2 {
		t.Errorf("by address after the TTL: %q, want %q", got, tp2)
	}
}

// With tracing off, no lookup finds a trace, traced machine or not.
func TestOff(t *testing.T) {
	f := newFixture(t)
	f.workflow(t, "wf1", "m1", tp1)
	f.idx = machinetrace.New(f.db, machinetrace.Config{Off: true})
	lookups := map[string]func() (machinetrace.Trace, error){
		"machine": func() (machinetrace.Trace, error) { return f.machine(t, "m1") },
		"MAC":     func() (machinetrace.Trace, error) { return f.idx.ForMAC("02:00:00:00:00:01") },
		"address": func() (machinetrace.Trace, error) { return f.idx.ForAddr(netip.MustParseAddr("198.18.0.11")) },
	}
	for name, lookup := range lookups {
		if got, err := lookup(); err != nil || got != (machinetrace.Trace{}) {
			t.Errorf("%s: %+v, %v; want no trace", name, got, err)
		}
	}
}

// The index follows the store: a workflow that ends keeps its machine
// traced for the linger and no longer; a new workflow's traceparent
// replaces the old one at once; a deleted workflow traces nothing.
func TestFollowsTheStore(t *testing.T) {
	f := newFixture(t)
	f.workflow(t, "wf1", "m1", tp1)
	check := func(when, want string) {
		t.Helper()
		got, err := f.machine(t, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Traceparent != want {
			t.Errorf("%s: traceparent %q, want %q", when, got.Traceparent, want)
		}
	}
	check("active", tp1)
	end := t0.Add(10 * time.Minute)
	apptest.Apply(t, f.db, site.AdvanceWorkflow, site.Advance{Workflow: "wf1", Kind: site.AdvanceCancel, Reason: "test", Time: end})
	f.now = end.Add(machinetrace.DefaultLinger - time.Second)
	check("ended, within the linger", tp1)
	f.now = end.Add(machinetrace.DefaultLinger)
	check("ended, past the linger", "")

	f.workflow(t, "wf2", "m1", tp2)
	check("a new workflow", tp2)
	apptest.Apply(t, f.db, site.AdvanceWorkflow, site.Advance{Workflow: "wf2", Kind: site.AdvanceCancel, Reason: "test", Time: f.now})
	check("cancelled, within the linger", tp2)
	apptest.Apply(t, f.db, site.DeleteWorkflow, site.Delete{Key: "wf2"})
	// Deleting a workflow leaves its machine as it was: the index has
	// it cached at that version, within the linger.
	check("deleted, within the linger", tp2)
	f.idx = machinetrace.New(f.db, machinetrace.Config{Now: func() time.Time { return f.now }})
	check("deleted, read afresh", "")
}

// The hot path: a machine at a version the index has seen is answered
// from memory.
func BenchmarkMachineCached(b *testing.B) {
	db := openStore(b)
	apptest.Put(b, db, t0,
		&store.Template{Name: "install", Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}},
		apptest.Machine("m1", 1),
		&store.Workflow{ID: "wf1", MachineID: "m1", Template: "install", Traceparent: tp1})
	idx := machinetrace.New(db, machinetrace.Config{})
	var m *store.Machine
	db.View(func(tx *store.Tx) (err error) {
		if m, err = store.Get[store.Machine](tx, "m1"); err != nil {
			return err
		}
		_, err = idx.Machine(tx, m) // read once, then cached
		return err
	})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if tr, err := idx.Machine(nil, m); err != nil || !tr.Traced() {
				b.Fatal(tr, err)
			}
		}
	})
}
