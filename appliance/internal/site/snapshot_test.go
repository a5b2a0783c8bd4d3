package site

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// populateAll applies one of each entity and some events, ending at
// index 10.
func populateAll(t *testing.T, e *env) {
	t.Helper()
	e.applyOK(1, PutSettings, Put[store.Settings]{Object: fxSettings(), Time: ts0})
	e.applyOK(2, PutMember, Put[store.Member]{Object: fxMember("n1"), Time: ts0})
	e.applyOK(3, CreateToken, Put[store.Token]{Object: fxToken("tok1"), Time: ts0})
	e.applyOK(4, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0})
	e.applyOK(5, PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0})
	e.applyOK(6, PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0})
	e.applyOK(7, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02"), Time: ts0, Events: []store.Event{{Kind: "machine.created", MachineID: "m1"}}})
	e.applyOK(8, PutLease, Put[store.Lease]{Object: fxLease("198.18.0.100"), Time: ts0})
	e.applyOK(9, PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: ts0})
	e.applyOK(10, AppendEvents, Events{Time: ts1, Events: []store.Event{{Kind: "a", Fields: map[string]string{"x": "1"}}, {Kind: "b", Message: "two"}}})
}

func TestSnapshotRestore(t *testing.T) {
	src := newEnv(t)
	populateAll(t, src)
	want := readState(t, src.db)
	if want.Applied != 10 || len(want.Events) != 5 {
		t.Fatalf("source: applied %d, %d events", want.Applied, len(want.Events))
	}

	// The snapshot is the state when Snapshot was called, whatever is
	// applied before it is written (Raft persists in the background).
	snap, err := src.sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	src.applyOK(11, PutSubnet, Put[store.Subnet]{Object: fxSubnet("later"), Time: ts1})
	var sink bytes.Buffer
	if _, err := snap.WriteTo(&sink); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	snap.Release()

	dst := newEnv(t)
	dst.applyOK(1, PutImage, Put[store.Image]{Object: fxImage("only-in-dst"), Time: ts1}) // replaced by the restore
	if err := dst.sm.Restore(bytes.NewReader(sink.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got := readState(t, dst.db)

	t.Run("applied index", func(t *testing.T) {
		if got.Applied != 10 || dst.sm.AppliedIndex() != 10 {
			t.Errorf("AppliedIndex = %d (state machine %d), want 10", got.Applied, dst.sm.AppliedIndex())
		}
	})
	t.Run("machines", func(t *testing.T) { diffList(t, want.Machines, got.Machines, 1) })
	t.Run("mac index", func(t *testing.T) {
		if diff := cmp.Diff(want.MACs, got.MACs); diff != "" || len(got.MACs) != 2 {
			t.Errorf("MAC index (-want +got):\n%s", diff)
		}
	})
	t.Run("subnets", func(t *testing.T) { diffList(t, want.Subnets, got.Subnets, 1) })
	t.Run("leases", func(t *testing.T) { diffList(t, want.Leases, got.Leases, 1) })
	t.Run("images", func(t *testing.T) { diffList(t, want.Images, got.Images, 1) })
	t.Run("templates", func(t *testing.T) { diffList(t, want.Templates, got.Templates, 1) })
	t.Run("workflows", func(t *testing.T) { diffList(t, want.Workflows, got.Workflows, 1) })
	t.Run("settings", func(t *testing.T) { diffList(t, want.Settings, got.Settings, 1) })
	t.Run("members", func(t *testing.T) { diffList(t, want.Members, got.Members, 1) })
	t.Run("tokens", func(t *testing.T) { diffList(t, want.Tokens, got.Tokens, 1) })
	t.Run("events", func(t *testing.T) { diffList(t, want.Events, got.Events, 5) })
	t.Run("raw", func(t *testing.T) {
		if diff := cmp.Diff(rawDump(t, src.db), rawDump(t, dst.db)); diff == "" {
			t.Error("the source's later write is in the snapshot")
		}
	})

	t.Run("continues from the snapshot", func(t *testing.T) {
		// Raft replays the entries after the snapshot; those before are
		// skipped.
		r := dst.apply(cmdEntry(t, 7, DeleteMachine, Delete{Key: "m1", Time: ts1}))
		if r.Err != nil || dst.db.AppliedIndex() != 10 {
			t.Fatalf("replay at 7: %+v, applied %d", r, dst.db.AppliedIndex())
		}
		dst.applyOK(11, PutSubnet, Put[store.Subnet]{Object: fxSubnet("later"), Time: ts1})
		if diff := cmp.Diff(readState(t, src.db), readState(t, dst.db)); diff != "" {
			t.Errorf("after the same log, source and restored store differ (-src +dst):\n%s", diff)
		}
		if diff := cmp.Diff(rawDump(t, src.db), rawDump(t, dst.db)); diff != "" {
			t.Errorf("raw content differs (-src +dst):\n%s", diff)
		}
	})
}

func diffList[T any](t *testing.T, want, got []T, n int) {
	t.Helper()
	if len(want) != n {
		t.Fatalf("source has %d, want %d", len(want), n)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// equateAddrs compares netip.Addr values with ==.
var equateAddrs = cmpopts.EquateComparable(netip.Addr{})

// cmd is a command to apply: its type and payload.
type cmd struct {
	typ     Type
	payload any
}

// TestSnapshotRoundTripPerEntity takes a snapshot of a store holding one
// kind of entity and restores it into a fresh store: the restored store
// holds the same bytes, and answers the same through the entity's reads
// and indexes.
func TestSnapshotRoundTripPerEntity(t *testing.T) {
	reserved := fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02")
	reserved.Interfaces[1].IP, reserved.Interfaces[1].Subnet = "198.18.0.20", "lab"
	later := ts0.Add(24 * time.Hour)
	base := []cmd{
		{PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0}},
		{PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0}},
		{PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0}},
		{PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0}},
	}
	tests := map[string]struct {
		setup []cmd
		// read returns what the store says about the entity, through its
		// reads and indexes; it must not be empty.
		read func(tx *store.Tx) (any, error)
	}{
		"settings": {
			setup: []cmd{{PutSettings, Put[store.Settings]{Object: fxSettings(), Time: ts0}}},
			read:  func(tx *store.Tx) (any, error) { return tx.Settings() },
		},
		"member": {
			setup: []cmd{{PutMember, Put[store.Member]{Object: fxMember("n1"), Time: ts0}}},
			read:  func(tx *store.Tx) (any, error) { return store.List[store.Member](tx) },
		},
		"ca generation": {
			setup: []cmd{{SetCAGeneration, CARotation{Step: CABegin, Generation: 2, Time: ts0}}},
			read:  func(tx *store.Tx) (any, error) { return tx.CA() },
		},
		"token": {
			setup: []cmd{{CreateToken, Put[store.Token]{Object: fxToken("tok1"), Time: ts0}}},
			read:  func(tx *store.Tx) (any, error) { return store.List[store.Token](tx) },
		},
		"subnet": {
			setup: []cmd{{PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0}}},
			read: func(tx *store.Tx) (any, error) {
				s, err := store.List[store.Subnet](tx)
				return []any{s, tx.IPAMGeneration()}, err
			},
		},
		"image": {
			setup: []cmd{{PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0}}},
			read:  func(tx *store.Tx) (any, error) { return store.List[store.Image](tx) },
		},
		"template": {
			setup: []cmd{{PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: ts0}}},
			read:  func(tx *store.Tx) (any, error) { return store.List[store.Template](tx) },
		},
		"machine": {
			setup: []cmd{{PutMachine, Put[store.Machine]{Object: reserved, Time: ts0}}},
			read: func(tx *store.Tx) (any, error) {
				ms, err := store.List[store.Machine](tx)
				if err != nil {
					return nil, err
				}
				byMAC, err := tx.MachineByMAC("02:00:00:00:00:02")
				if err != nil {
					return nil, err
				}
				byIP, nic, err := tx.MachineByIP(netip.MustParseAddr("198.18.0.20"))
				if err != nil {
					return nil, err
				}
				rs, err := tx.Reservations()
				return []any{ms, byMAC.ID, byIP.ID, nic, rs}, err
			},
		},
		"lease": {
			setup: []cmd{
				{PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: ts0}},
				{PutLease, Put[store.Lease]{Object: fxLease("198.18.0.100"), Time: ts0}},
				{CommitLease, &store.Lease{IP: "198.18.0.101", MAC: "02:00:00:00:00:02", MachineID: "m2", Subnet: "lab", State: store.LeaseActive, Starts: ts0, Expires: ts1}},
			},
			read: func(tx *store.Tx) (any, error) {
				ls, err := store.List[store.Lease](tx)
				if err != nil {
					return nil, err
				}
				a, err := tx.LeaseByMAC("lab", "02:00:00:00:00:01")
				if err != nil {
					return nil, err
				}
				b, err := tx.LeaseByMAC("lab", "02:00:00:00:00:02")
				return []any{ls, a, b}, err
			},
		},
		"workflow": {
			setup: append(base[:4:4],
				cmd{PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: ts0}},
				cmd{AdvanceWorkflow, Advance{Workflow: "wf1", Kind: AdvanceReport, Report: &Report{Action: "wipe", Attempt: 1, Kind: ReportStart}, Time: ts0}},
			),
			read: func(tx *store.Tx) (any, error) {
				ws, err := store.List[store.Workflow](tx)
				if err != nil {
					return nil, err
				}
				due, err := tx.DueWorkflows(later)
				return []any{ws, due}, err
			},
		},
		"artifact": {
			setup: []cmd{
				{PutImage, Put[store.Image]{Object: fxImage("debian"), Time: ts0}},
				{RecordArtifact, ArtifactHeld{Node: "n1", SHA256: fxImage("debian").SHA256, Size: 1 << 20, Time: ts0}},
				{DeleteImage, Delete{Key: "debian", Time: ts1}},
			},
			read: func(tx *store.Tx) (any, error) {
				as, err := store.List[store.Artifact](tx)
				return []any{as, tx.ArtifactGeneration()}, err
			},
		},
		"waiting order": {
			setup: append(base[:4:4],
				cmd{PlaceOrder, Put[store.Order]{Object: &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Template: "install", Image: "debian"}, Time: ts0}}),
			read: func(tx *store.Tx) (any, error) {
				w, err := tx.WaitingOrders()
				if len(w) != 1 {
					return nil, fmt.Errorf("%d orders waiting, want 1", len(w))
				}
				return w, err
			},
		},
		"order and jobs": {
			setup: append(base[:4:4],
				cmd{PlaceOrder, Put[store.Order]{Object: &store.Order{ID: "o1", Action: store.OrderPowerCycle, MachineID: "m1"}, Time: ts0}}),
			read: func(tx *store.Tx) (any, error) {
				os, err := store.List[store.Order](tx)
				if err != nil {
					return nil, err
				}
				js, err := store.List[store.Job](tx)
				if err != nil {
					return nil, err
				}
				pending, err := tx.PendingJobs(later)
				return []any{os, js, pending}, err
			},
		},
		"bmc certificate": {
			setup: []cmd{
				{PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: ts0}},
				{AcceptBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: "sha256:" + strings.Repeat("0a", 32), Time: ts0}},
				{RecordBMCCertificate, BMCCertificate{Machine: "m1", Fingerprint: "sha256:" + strings.Repeat("0b", 32), Address: "10.1.0.1", Time: ts0}},
			},
			read: func(tx *store.Tx) (any, error) {
				m, err := store.Get[store.Machine](tx, "m1")
				if err != nil {
					return nil, err
				}
				return m.BMC.Certificate, nil
			},
		},
		"events and sync state": {
			setup: []cmd{
				{AppendEvents, Events{Time: ts0, Events: []store.Event{{Kind: "a"}, {Kind: "b", Message: "two"}}}},
				{ApplyDesired, DesiredPayload{Desired: Desired{Revision: 1, Changes: []DesiredChange{
					{Kind: DesiredImage, Key: "debian", Object: mustJSON(t, fxImage("debian"))}}}, Time: ts0}},
				{AckEvents, AckedPayload{Seq: 1, Time: ts0}},
			},
			read: func(tx *store.Tx) (any, error) {
				evs, err := tx.EventsSince(0, 100)
				return []any{evs, tx.LastEventSeq(), tx.SyncState(), tx.SyncManaged()}, err
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := newEnv(t)
			for i, c := range tc.setup {
				src.applyOK(uint64(i+1), c.typ, c.payload)
			}
			dst := newEnv(t)
			if err := dst.sm.Restore(bytes.NewReader(persist(t, src.sm))); err != nil {
				t.Fatalf("Restore: %v", err)
			}
			if got, want := dst.sm.AppliedIndex(), uint64(len(tc.setup)); got != want {
				t.Errorf("AppliedIndex after restore = %d, want %d", got, want)
			}
			if diff := cmp.Diff(rawDump(t, src.db), rawDump(t, dst.db)); diff != "" {
				t.Errorf("restored store's content (-src +dst):\n%s", diff)
			}
			// read is what tc.read returns, or the error it fails with.
			read := func(e *env) any {
				var v any
				e.view(func(tx *store.Tx) error {
					var err error
					if v, err = tc.read(tx); err != nil {
						v = err.Error()
					}
					return nil
				})
				return v
			}
			want := read(src)
			if _, failed := want.(string); failed {
				t.Fatalf("reading the source: %s", want)
			}
			if cmp.Equal(want, read(newEnv(t)), equateAddrs) {
				t.Fatalf("the source reads as an empty store does: %+v", want)
			}
			if diff := cmp.Diff(want, read(dst), equateAddrs); diff != "" {
				t.Errorf("restored store's reads (-src +dst):\n%s", diff)
			}
		})
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestSnapshotWriteFails(t *testing.T) {
	e := newEnv(t)
	populateAll(t, e)
	snap, err := e.sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.WriteTo(failingWriter{errors.New("disk full")}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("WriteTo = %v, want the write error", err)
	}
	snap.Release()
	snap.Release()
	// The store is not held by the released snapshot: a restore can swap it.
	good := persist(t, e.sm)
	if err := e.sm.Restore(bytes.NewReader(good)); err != nil {
		t.Fatalf("Restore after a failed write: %v", err)
	}
}

func TestRestoreGarbage(t *testing.T) {
	e := newEnv(t)
	populateAll(t, e)
	before := rawDump(t, e.db)
	good := persist(t, e.sm)
	truncated := good[:len(good)/2]
	garbage := bytes.Repeat([]byte("not a bbolt file "), 1000)
	for name, data := range map[string][]byte{"garbage": garbage, "truncated": truncated, "empty": nil, "short": []byte("x")} {
		t.Run(name, func(t *testing.T) {
			err := e.sm.Restore(bytes.NewReader(data))
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Restore = %v, want ErrCorrupt", err)
			}
			if diff := cmp.Diff(before, rawDump(t, e.db)); diff != "" {
				t.Errorf("failed Restore changed the store (-want +got):\n%s", diff)
			}
		})
	}
	e.applyOK(11, PutSubnet, Put[store.Subnet]{Object: fxSubnet("after"), Time: ts1})
}
