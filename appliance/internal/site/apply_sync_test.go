package site

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) syncState() store.SyncState {
	e.t.Helper()
	var s store.SyncState
	e.view(func(tx *store.Tx) error { s = tx.SyncState(); return nil })
	return s
}

// checkDesired checks an ApplyDesired result and the applied revision.
func checkDesired(t *testing.T, e *env, r Result, rev uint64, applied bool, refused int) {
	t.Helper()
	got, err := DecodeValue[DesiredResult](r)
	if r.Err != nil || err != nil {
		t.Fatalf("result = %+v (err %v, decode %v)", r, r.Err, err)
	}
	want := &DesiredResult{Revision: rev, Applied: applied, Refused: refused}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("desired result (-want +got):\n%s", diff)
	}
	if s := e.syncState(); s.AppliedRevision < rev {
		t.Errorf("applied revision %d, want at least %d", s.AppliedRevision, rev)
	}
}

// desiredCommands apply a revision of central's desired state: the
// current command and the previous release's, which keeps its rules for
// the logs that hold it. A revision's rules are the same for both.
var desiredCommands = map[string]Type{"ApplyDesired": ApplyDesired, "ApplyDesiredV3": ApplyDesiredV3, "ApplyDesiredV1": ApplyDesiredV1}

// forEachDesiredCommand runs test with each command of desiredCommands.
func forEachDesiredCommand(t *testing.T, test func(t *testing.T, applyDesired Type)) {
	for name, typ := range desiredCommands {
		t.Run(name, func(t *testing.T) { test(t, typ) })
	}
}

func desiredOf(rev uint64, full bool, changes ...DesiredChange) DesiredPayload {
	return DesiredPayload{Desired: Desired{Revision: rev, Full: full, Changes: changes}, Time: ts1}
}

func putChange(t *testing.T, kind, key string, obj any) DesiredChange {
	return DesiredChange{Kind: kind, Key: key, Object: mustJSON(t, obj)}
}

// TestApplyDesiredOnce: a revision applied twice (a command proposed
// twice) applies once; its order is created once.
func TestApplyDesiredOnce(t *testing.T) {
	forEachDesiredCommand(t, func(t *testing.T, applyDesired Type) {
		e := baseSite(t)
		order := &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}
		cmd := desiredOf(1, false, putChange(t, DesiredImage, "ubuntu", fxImage("ubuntu")), putChange(t, DesiredOrder, "o1", order))
		checkDesired(t, e, e.applyOK(5, applyDesired, cmd), 1, true, 0)
		checkEventKinds(t, e, "image.added", "bmc.job.created", "order.created")
		before := rawDump(t, e.db)
		checkDesired(t, e, e.applyOK(6, applyDesired, cmd), 1, false, 0)
		if diff := cmp.Diff(withApplied(before, 6), rawDump(t, e.db)); diff != "" {
			t.Errorf("replayed revision changed more than the applied index (-want +got):\n%s", diff)
		}
		// The next revision names the same order again: it exists, so it is
		// left as it is.
		checkDesired(t, e, e.applyOK(7, applyDesired, desiredOf(2, false, putChange(t, DesiredOrder, "o1", order))), 2, true, 0)
		checkEventKinds(t, e, "image.added", "bmc.job.created", "order.created")
		e.view(func(tx *store.Tx) error {
			o, err := store.Get[store.Order](tx, "o1")
			if err != nil || o.Version != 5 || o.State != store.OrderRunning {
				t.Errorf("order o1 = %+v, %v; want the one created at index 5, running", o, err)
			}
			return nil
		})
	})
}

// TestApplyDesiredRefusals: a revision that does not follow, or is
// malformed, changes nothing but the applied index; a change the store
// refuses is an event and the revision still applies.
func TestApplyDesiredRefusals(t *testing.T) {
	forEachDesiredCommand(t, func(t *testing.T, applyDesired Type) {
		clear := fxMachine("m2", "02:00:00:00:00:02")
		clear.BMC.SealedPassword, clear.BMC.Password = nil, "hunter2"
		tests := map[string]struct {
			payload DesiredPayload
			code    string
		}{
			"gap":                {desiredOf(2, false, putChange(t, DesiredImage, "x", fxImage("x"))), errs.CodeConflict},
			"no revision":        {desiredOf(0, false), errs.CodeInvalid},
			"delete in full":     {desiredOf(1, true, DesiredChange{Kind: DesiredImage, Key: "debian", Deleted: true}), errs.CodeInvalid},
			"put without object": {desiredOf(1, false, DesiredChange{Kind: DesiredImage, Key: "debian"}), errs.CodeInvalid},
			"named twice":        {desiredOf(1, false, putChange(t, DesiredImage, "x", fxImage("x")), putChange(t, DesiredImage, "x", fxImage("x"))), errs.CodeInvalid},
		}
		for name, tc := range tests {
			t.Run(name, func(t *testing.T) {
				e := baseSite(t)
				before := rawDump(t, e.db)
				r := e.applyCmd(5, applyDesired, tc.payload)
				if r.Err == nil || r.Err.Code != tc.code {
					t.Fatalf("result = %+v, want a %s refusal", r, tc.code)
				}
				if diff := cmp.Diff(withApplied(before, 5), rawDump(t, e.db)); diff != "" {
					t.Errorf("refused revision changed more than the applied index (-want +got):\n%s", diff)
				}
			})
		}

		e := baseSite(t)
		noBMC := fxMachine("m3", "02:00:00:00:00:03")
		noBMC.BMC = nil
		r := e.applyOK(5, applyDesired, desiredOf(1, false,
			putChange(t, DesiredMachine, "m2", clear),
			putChange(t, DesiredMachine, "m3", noBMC),
			putChange(t, DesiredOrder, "o-nobmc", &store.Order{ID: "o-nobmc", Action: store.OrderPowerOn, MachineID: "m3"}),
			putChange(t, DesiredMachine, "m4", fxMachine("m4", "02:00:00:00:00:01")), // m1's MAC
			putChange(t, DesiredImage, "other", fxImage("wrong-name")),
			putChange(t, "subnet-v9", "s", map[string]string{"x": "y"}),
			putChange(t, DesiredImage, "ok", fxImage("ok")),
		))
		checkDesired(t, e, r, 1, true, 5)
		want := []string{"image.added", "sync.change_refused", "sync.order_refused", "sync.change_refused", "sync.change_refused", "sync.change_refused"}
		if applyDesired == ApplyDesired {
			// Its machine puts are events (fleet.go).
			want = slices.Insert(want, 2, "machine.created")
		}
		checkEventKinds(t, e, want...)
		s := readState(t, e.db)
		if len(s.Machines) != 2 || len(s.Images) != 2 {
			t.Errorf("machines %d, images %d; want m1 and m3, debian and ok", len(s.Machines), len(s.Images))
		}
		e.view(func(tx *store.Tx) error {
			if n := store.Count[store.Order](tx); n != 0 {
				t.Errorf("%d orders stored, want none", n)
			}
			events, _ := tx.EventsSince(1, 10)
			i := slices.IndexFunc(events, func(e *store.Event) bool { return e.Kind == "sync.order_refused" })
			if f := events[i].Fields; f["order"] != "o-nobmc" || f["revision"] != "1" || f["reason"] == "" || (applyDesired == ApplyDesired) != (events[i].MachineID == "m3") {
				t.Errorf("order refusal event = %+v", events[i])
			}
			return nil
		})
	})
}

// TestApplyDesiredMachineKeepsApplianceFields: central's put of a
// machine keeps what the appliance owns.
func TestApplyDesiredMachineKeepsApplianceFields(t *testing.T) {
	forEachDesiredCommand(t, func(t *testing.T, applyDesired Type) {
		e := baseSite(t)
		e.applyOK(5, SetPower, Power{Machine: "m1", Power: "on", Time: ts0})
		m := fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:0a")
		m.State, m.Hostname, m.BMC.SealedPassword, m.Power, m.Workflow = "", "renamed", nil, "off", "forged"
		checkDesired(t, e, e.applyOK(6, applyDesired, desiredOf(1, false, putChange(t, DesiredMachine, "m1", m))), 1, true, 0)
		e.view(func(tx *store.Tx) error {
			got, err := store.Get[store.Machine](tx, "m1")
			if err != nil {
				t.Fatal(err)
			}
			if got.Hostname != "renamed" || got.State != store.StateReady || got.Power != "on" || got.Workflow != "" ||
				string(got.BMC.SealedPassword) != "sealed" || len(got.Interfaces) != 2 || got.Version != 6 {
				t.Errorf("machine after central's put = %+v", got)
			}
			return nil
		})
	})
}

// TestAckEvents: the acked sequence only moves forward and never past
// the last event.
func TestAckEvents(t *testing.T) {
	e := baseSite(t) // one event
	e.applyOK(5, AppendEvents, Events{Time: ts0, Events: []store.Event{{Kind: "a"}, {Kind: "b"}}})
	e.applyOK(6, AckEvents, AckedPayload{Seq: 2, Time: ts0})
	e.applyOK(7, AckEvents, AckedPayload{Seq: 1, Time: ts0})
	if got := e.syncState(); got != (store.SyncState{AckedSeq: 2, LastSeq: 3}) {
		t.Errorf("sync state = %+v, want acked 2 of 3", got)
	}
	before := rawDump(t, e.db)
	r := e.applyCmd(8, AckEvents, AckedPayload{Seq: 4, Time: ts0})
	if r.Err == nil || r.Err.Code != errs.CodeInvalid {
		t.Fatalf("ack past the last event: result %+v, want invalid", r)
	}
	if diff := cmp.Diff(withApplied(before, 8), rawDump(t, e.db)); diff != "" {
		t.Errorf("refused ack changed more than the applied index (-want +got):\n%s", diff)
	}
}

// TestAckEventsPrunes: an acknowledgement deletes the acknowledged events
// older than the latest KeepAckedEvents, never one central has not
// acknowledged.
func TestAckEventsPrunes(t *testing.T) {
	defer func(k uint64) { KeepAckedEvents = k }(KeepAckedEvents)
	KeepAckedEvents = 2
	e := baseSite(t) // one event
	var evs []store.Event
	for range 9 {
		evs = append(evs, store.Event{Kind: "x"})
	}
	e.applyOK(5, AppendEvents, Events{Time: ts0, Events: evs}) // events 1-10
	e.applyOK(6, AckEvents, AckedPayload{Seq: 7, Time: ts0})
	var seqs []uint64
	e.view(func(tx *store.Tx) error {
		all, err := tx.EventsSince(0, 100)
		for _, ev := range all {
			seqs = append(seqs, ev.Seq)
		}
		return err
	})
	if diff := cmp.Diff([]uint64{6, 7, 8, 9, 10}, seqs); diff != "" {
		t.Errorf("events kept after acknowledging 7 of 10, keeping 2 acknowledged (-want +got):\n%s", diff)
	}
	if got := e.syncState(); got != (store.SyncState{AckedSeq: 7, LastSeq: 10}) {
		t.Errorf("sync state = %+v, want acked 7 of 10", got)
	}
}

// TestApplyDesiredFullSnapshot: a full snapshot deletes what central put
// before and no longer names; what the site created itself, and orders,
// stay.
func TestApplyDesiredFullSnapshot(t *testing.T) {
	forEachDesiredCommand(t, func(t *testing.T, applyDesired Type) {
		e := baseSite(t) // local: template install, machine m1, image debian
		order := &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}
		checkDesired(t, e, e.applyOK(5, applyDesired, desiredOf(1, false,
			putChange(t, DesiredImage, "a", fxImage("a")), putChange(t, DesiredImage, "b", fxImage("b")),
			putChange(t, DesiredTemplate, "t1", fxTemplate("t1")), putChange(t, DesiredMachine, "m2", fxMachine("m2", "02:00:00:00:00:02")),
			putChange(t, DesiredOrder, "o1", order))), 1, true, 0)
		managed := func() []string {
			var out []string
			e.view(func(tx *store.Tx) error { out = tx.SyncManaged(); return nil })
			return out
		}
		if diff := cmp.Diff([]string{"image/a", "image/b", "machine/m2", "template/t1"}, managed()); diff != "" {
			t.Errorf("managed after revision 1 (-want +got):\n%s", diff)
		}
		// Revision 2 is lost to compaction; 3 is a snapshot.
		checkDesired(t, e, e.applyOK(6, applyDesired, desiredOf(3, true, putChange(t, DesiredImage, "a", fxImage("a")))), 3, true, 0)
		s := readState(t, e.db)
		var names []string
		for _, i := range s.Images {
			names = append(names, "image/"+i.Name)
		}
		for _, m := range s.Machines {
			names = append(names, "machine/"+m.ID)
		}
		for _, tp := range s.Templates {
			names = append(names, "template/"+tp.Name)
		}
		if diff := cmp.Diff([]string{"image/a", "image/debian", "machine/m1", "template/install"}, names); diff != "" {
			t.Errorf("objects after the snapshot (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"image/a"}, managed()); diff != "" {
			t.Errorf("managed after the snapshot (-want +got):\n%s", diff)
		}
		e.view(func(tx *store.Tx) error {
			if _, err := store.Get[store.Order](tx, "o1"); err != nil {
				t.Errorf("order o1 after the snapshot: %v", err)
			}
			return nil
		})
		// A delta deletes; a snapshot at or below the applied revision is a
		// replay and changes nothing.
		checkDesired(t, e, e.applyOK(7, applyDesired, desiredOf(4, false, DesiredChange{Kind: DesiredImage, Key: "a", Deleted: true})), 4, true, 0)
		before := rawDump(t, e.db)
		checkDesired(t, e, e.applyOK(8, applyDesired, desiredOf(3, true)), 3, false, 0)
		if diff := cmp.Diff(withApplied(before, 8), rawDump(t, e.db)); diff != "" {
			t.Errorf("replayed snapshot changed more than the applied index (-want +got):\n%s", diff)
		}
		if len(managed()) != 0 {
			t.Errorf("managed = %v, want none", managed())
		}
	})
}

// TestSyncStateSnapshotRoundTrip: the sync cursors and the objects
// central manages travel with a snapshot.
func TestSyncStateSnapshotRoundTrip(t *testing.T) {
	forEachDesiredCommand(t, func(t *testing.T, applyDesired Type) {
		src := baseSite(t)
		src.applyOK(5, applyDesired, desiredOf(1, false, putChange(t, DesiredImage, "a", fxImage("a"))))
		src.applyOK(6, AckEvents, AckedPayload{Seq: 1, Time: ts1})
		dst := newEnv(t)
		if err := dst.sm.Restore(bytes.NewReader(persist(t, src.sm))); err != nil {
			t.Fatal(err)
		}
		if got, want := dst.syncState(), (store.SyncState{AppliedRevision: 1, AckedSeq: 1, LastSeq: 1}); got != want {
			t.Errorf("sync state after restore = %+v, want %+v", got, want)
		}
		dst.view(func(tx *store.Tx) error {
			if diff := cmp.Diff([]string{"image/a"}, tx.SyncManaged()); diff != "" {
				t.Errorf("managed after restore (-want +got):\n%s", diff)
			}
			return nil
		})
		// The restored store refuses a replay and takes the next revision.
		checkDesired(t, dst, dst.applyOK(7, applyDesired, desiredOf(1, false, putChange(t, DesiredImage, "b", fxImage("b")))), 1, false, 0)
		checkDesired(t, dst, dst.applyOK(8, applyDesired, desiredOf(2, false, putChange(t, DesiredImage, "b", fxImage("b")))), 2, true, 0)
	})
}
