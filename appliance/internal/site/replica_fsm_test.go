package site

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

// The proposer's clock, as carried in commands.
var (
	fsmT0 = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	fsmT1 = time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)
)

func fsmTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// fsmEnv is an FSM over a fresh store.
type fsmEnv struct {
	t   *testing.T
	db  *store.DB
	fsm *FSM
}

func newFSMEnv(t *testing.T) *fsmEnv {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "site.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return &fsmEnv{t: t, db: db, fsm: NewFSM(db, fsmTestLogger(t))}
}

func encodeCmd(t *testing.T, typ Type, payload any) []byte {
	t.Helper()
	cmd, err := Encode(typ, payload)
	if err != nil {
		t.Fatalf("Encode(%d): %v", typ, err)
	}
	return cmd
}

func commandLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// apply applies one log and returns its Result.
func (e *fsmEnv) apply(l *raft.Log) Result {
	e.t.Helper()
	resp := e.fsm.Apply(l)
	r, ok := resp.(Result)
	if !ok {
		e.t.Fatalf("Apply(%d) returned %T, want Result", l.Index, resp)
	}
	return r
}

// applyOK applies a command that must succeed.
func (e *fsmEnv) applyOK(index uint64, typ Type, payload any) Result {
	e.t.Helper()
	r := e.apply(commandLog(index, encodeCmd(e.t, typ, payload)))
	if r.Err != nil || r.Index != index {
		e.t.Fatalf("command %d at index %d: result %+v (err %v)", typ, index, r, r.Err)
	}
	return r
}

func (e *fsmEnv) view(fn func(tx *store.Tx) error) {
	e.t.Helper()
	if err := e.db.View(fn); err != nil {
		e.t.Fatalf("View: %v", err)
	}
}

// mustPanic runs fn and returns what it panicked with; it fails the test if
// fn returns normally.
func mustPanic(t *testing.T, fn func()) (v any) {
	t.Helper()
	defer func() { v = recover() }()
	fn()
	t.Fatal("did not panic")
	return nil
}

func panicText(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	}
	return fmt.Sprint(v)
}

// rawDump returns every key and value of every bucket of the store, read
// from a snapshot of its file: two stores with equal dumps hold the same
// bytes, indexes and metadata included.
func rawDump(t *testing.T, db *store.DB) map[string]map[string]string {
	t.Helper()
	snap, err := db.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), "dump.db")
	var buf bytes.Buffer
	_, err = snap.WriteTo(&buf)
	snap.Release()
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("open dump: %v", err)
	}
	defer bdb.Close()
	out := map[string]map[string]string{}
	err = bdb.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			m := map[string]string{}
			out[string(name)] = m
			return b.ForEach(func(k, v []byte) error {
				m[string(k)] = string(v)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatalf("read dump: %v", err)
	}
	return out
}

// withApplied returns a copy of dump whose applied index is idx.
func withApplied(dump map[string]map[string]string, idx uint64) map[string]map[string]string {
	out := map[string]map[string]string{}
	for b, kv := range dump {
		m := map[string]string{}
		for k, v := range kv {
			m[k] = v
		}
		out[b] = m
	}
	b := make([]byte, 8)
	for i := range 8 {
		b[7-i] = byte(idx >> (8 * i))
	}
	out["meta"]["applied_index"] = string(b)
	return out
}

// storeState is a store's content read through its API.
type storeState struct {
	Applied   uint64
	Machines  []*store.Machine
	MACs      map[string]string
	Subnets   []*store.Subnet
	Leases    []*store.Lease
	Images    []*store.Image
	Templates []*store.Template
	Workflows []*store.Workflow
	Settings  []*store.Settings
	Members   []*store.Member
	Tokens    []*store.Token
	Events    []*store.Event
}

func readState(t *testing.T, db *store.DB) storeState {
	t.Helper()
	var s storeState
	err := db.View(func(tx *store.Tx) error {
		s.Applied = tx.AppliedIndex()
		var err error
		if s.Machines, err = store.List[store.Machine](tx); err != nil {
			return err
		}
		s.MACs = map[string]string{}
		for _, m := range s.Machines {
			for _, nic := range m.Interfaces {
				owner, err := tx.MachineByMAC(nic.MAC)
				if err != nil {
					return fmt.Errorf("MAC %s of %s: %w", nic.MAC, m.ID, err)
				}
				s.MACs[nic.MAC] = owner.ID
			}
		}
		if s.Subnets, err = store.List[store.Subnet](tx); err != nil {
			return err
		}
		if s.Leases, err = store.List[store.Lease](tx); err != nil {
			return err
		}
		if s.Images, err = store.List[store.Image](tx); err != nil {
			return err
		}
		if s.Templates, err = store.List[store.Template](tx); err != nil {
			return err
		}
		if s.Workflows, err = store.List[store.Workflow](tx); err != nil {
			return err
		}
		if s.Settings, err = store.List[store.Settings](tx); err != nil {
			return err
		}
		if s.Members, err = store.List[store.Member](tx); err != nil {
			return err
		}
		if s.Tokens, err = store.List[store.Token](tx); err != nil {
			return err
		}
		s.Events, err = tx.EventsSince(0, 1<<30)
		return err
	})
	if err != nil {
		t.Fatalf("read store: %v", err)
	}
	return s
}

// Sample objects.

func fxMachine(id string, macs ...string) *store.Machine {
	m := &store.Machine{
		ID: id, Hostname: id, Arch: "x86_64", State: store.StateReady,
		BMC:   &store.BMC{Address: "10.1.0.1", Driver: "redfish", SealedPassword: []byte("sealed")},
		Disks: []store.Disk{{Name: "nvme0n1", Size: 1 << 40}},
		Tags:  []string{"rack-2"},
	}
	for _, mac := range macs {
		m.Interfaces = append(m.Interfaces, store.Interface{MAC: mac})
	}
	return m
}

func fxSubnet(name string) *store.Subnet {
	return &store.Subnet{
		Name: name, CIDR: "198.18.0.0/24", Gateway: "198.18.0.1", DNS: []string{"198.18.0.1"},
		Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.200"}},
	}
}

func fxLease(ip string) *store.Lease {
	return &store.Lease{IP: ip, MAC: "02:00:00:00:00:01", MachineID: "m1", Subnet: "lab", State: store.LeaseActive, Starts: fsmT0, Expires: fsmT0.Add(time.Hour)}
}

func fxImage(name string) *store.Image {
	return &store.Image{Name: name, Type: store.ImageOS, URL: "https://img.example.net/" + name + ".raw.gz", Format: "raw.gz",
		SHA256: strings.Repeat("0f", 32)}
}

func fxTemplate(name string) *store.Template {
	return &store.Template{Name: name, Actions: []store.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}},
		{Name: "write", Type: "image.write", Args: map[string]string{"device": "/dev/vda", "image": "{{ .image }}"},
			Needs: []string{"wipe"}, Timeout: store.Duration(time.Minute)},
	}}
}

func fxWorkflow(id, machine string) *store.Workflow {
	return &store.Workflow{ID: id, MachineID: machine, Template: "install", Purpose: store.PurposeProvision, Values: map[string]string{"image": "debian"}}
}

// checkMachineState checks a machine's state and current workflow.
func checkMachineState(t *testing.T, e *fsmEnv, id string, state store.MachineState, wf string) {
	t.Helper()
	e.view(func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, id)
		if err != nil {
			t.Fatalf("machine %s: %v", id, err)
		}
		if m.State != state || m.Workflow != wf {
			t.Errorf("machine %s is %s with workflow %q, want %s with %q", id, m.State, m.Workflow, state, wf)
		}
		return nil
	})
}

// checkEventKinds checks the kinds of every event recorded, in order.
func checkEventKinds(t *testing.T, e *fsmEnv, want ...string) {
	t.Helper()
	e.view(func(tx *store.Tx) error {
		events, err := tx.EventsSince(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range events {
			got = append(got, ev.Kind)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("event kinds (-want +got):\n%s", diff)
		}
		return nil
	})
}

func fxMember(id string) *store.Member {
	return &store.Member{ID: id, RaftAddr: "10.0.0.1:7000", APIAddr: "https://10.0.0.1:8443"}
}

func fxToken(id string) *store.Token {
	return &store.Token{ID: id, Name: "ops", Hash: strings.Repeat("5a", 32)}
}

func fxSettings() *store.Settings {
	return &store.Settings{SiteName: "ams2", UnknownMachines: "exit"}
}

// setMeta sets the Meta of a store object.
func setMeta(o any, m store.Meta) { *o.(store.Object).ObjectMeta() = m }

// checkPut checks a put's Result and the stored object: both equal want
// stamped with the command's index and time.
func checkPut[T any, P objectPtr[T]](t *testing.T, e *fsmEnv, r Result, want P, index uint64) {
	t.Helper()
	if r.Err != nil || r.Index != index {
		t.Fatalf("result = %+v (err %v), want index %d and no error", r, r.Err, index)
	}
	got, err := DecodeValue[T](r)
	if err != nil {
		t.Fatalf("DecodeValue: %v", err)
	}
	w := *(*T)(want)
	setMeta(&w, store.Meta{Version: index, CreatedAt: fsmT0, UpdatedAt: fsmT0})
	if diff := cmp.Diff(&w, got); diff != "" {
		t.Errorf("result value (-want +got):\n%s", diff)
	}
	e.view(func(tx *store.Tx) error {
		stored, err := store.Get[T, P](tx, want.Key())
		if err != nil {
			t.Fatalf("Get %s %q: %v", want.Kind(), want.Key(), err)
		}
		if diff := cmp.Diff(&w, stored); diff != "" {
			t.Errorf("stored %s (-want +got):\n%s", want.Kind(), diff)
		}
		return nil
	})
}

// checkDeleted checks a delete's Result and that the object is gone.
func checkDeleted[T any, P objectPtr[T]](t *testing.T, e *fsmEnv, r Result, key string, index uint64) {
	t.Helper()
	if r.Err != nil || r.Index != index || r.Value != nil || r.Object != nil {
		t.Fatalf("result = %+v (err %v), want index %d, no value, no error", r, r.Err, index)
	}
	e.view(func(tx *store.Tx) error {
		if _, err := store.Get[T, P](tx, key); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Get(%q) after delete = %v, want ErrNotFound", key, err)
		}
		return nil
	})
}

// TestApplyEveryCommand applies every command type in order and checks
// each one's result and effect on the store.
func TestApplyEveryCommand(t *testing.T) {
	e := newFSMEnv(t)
	ev := func(kind, machine string) store.Event {
		return store.Event{Kind: kind, MachineID: machine, Message: kind + " " + machine, Fields: map[string]string{"by": "test"}}
	}
	wantEvent := func(seq, index uint64, src store.Event) *store.Event {
		src.Seq, src.Index, src.Time = seq, index, fsmT0
		return &src
	}
	checkEvents := func(t *testing.T, want ...*store.Event) {
		t.Helper()
		e.view(func(tx *store.Tx) error {
			got, err := tx.EventsSince(0, 100)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			return nil
		})
	}
	macByOwner := func(t *testing.T, mac, want string) {
		t.Helper()
		e.view(func(tx *store.Tx) error {
			m, err := tx.MachineByMAC(mac)
			switch {
			case want == "" && !errors.Is(err, errs.ErrNotFound):
				t.Errorf("MachineByMAC(%s) = %v, %v; want not found", mac, m, err)
			case want != "" && (err != nil || m.ID != want):
				t.Errorf("MachineByMAC(%s) = %v, %v; want %s", mac, m, err, want)
			}
			return nil
		})
	}

	machineEvent := ev("machine.created", "m1")
	appended := []store.Event{ev("power.on", "m1"), ev("boot.pxe", "m1")}
	wfEvent := ev("workflow.deleted", "m1")

	steps := []struct {
		typ     Type
		payload any
		check   func(t *testing.T, r Result, index uint64)
	}{
		{PutSettings, Put[store.Settings]{Object: fxSettings(), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxSettings(), i)
			e.view(func(tx *store.Tx) error {
				s, err := tx.Settings()
				if err != nil || s.SiteName != "ams2" {
					t.Errorf("Settings() = %+v, %v", s, err)
				}
				return nil
			})
		}},
		{PutMember, Put[store.Member]{Object: fxMember("n1"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxMember("n1"), i)
		}},
		{PutToken, Put[store.Token]{Object: fxToken("tok1"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxToken("tok1"), i)
		}},
		{PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxSubnet("lab"), i)
		}},
		{PutImage, Put[store.Image]{Object: fxImage("debian"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxImage("debian"), i)
		}},
		{PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxTemplate("install"), i)
		}},
		{PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02"), Time: fsmT0, Events: []store.Event{machineEvent}}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02"), i)
			macByOwner(t, "02:00:00:00:00:01", "m1")
			macByOwner(t, "02-00-00-00-00-02", "m1")
			checkEvents(t, wantEvent(1, i, machineEvent))
		}},
		{PutLease, Put[store.Lease]{Object: fxLease("198.18.0.100"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkPut(t, e, r, fxLease("198.18.0.100"), i)
		}},
		{PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			w, err := DecodeValue[store.Workflow](r)
			if r.Err != nil || err != nil {
				t.Fatalf("result = %+v (err %v, decode %v)", r, r.Err, err)
			}
			if w.Status() != workflow.Pending || len(w.State.Actions) != 2 || w.Values["hostname"] != "m1" {
				t.Errorf("created workflow = %+v, want pending with 2 actions and hostname m1", w)
			}
			a, _ := w.State.Plan.Action("write")
			if a.Args["url"] != fxImage("debian").URL || a.Args["sha256"] != fxImage("debian").SHA256 || a.Args["format"] != "raw.gz" {
				t.Errorf("image.write args = %v, want the image resolved", a.Args)
			}
			checkMachineState(t, e, "m1", store.StateProvisioning, "wf1")
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state")
		}},
		{AppendEvents, Events{Time: fsmT0, Events: appended}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || r.Index != i || r.Value != nil || r.Object != nil {
				t.Fatalf("result = %+v", r)
			}
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state", appended[0].Kind, appended[1].Kind)
		}},
		{AdvanceWorkflow, Advance{Workflow: "wf1", Kind: AdvanceCancel, Reason: "operator", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			w, err := DecodeValue[store.Workflow](r)
			if r.Err != nil || err != nil || w.Status() != workflow.Failed {
				t.Fatalf("result = %+v (err %v, decode %v), want a failed workflow", r, r.Err, err)
			}
			checkMachineState(t, e, "m1", store.StateFailed, "wf1")
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state", appended[0].Kind, appended[1].Kind,
				"action.skipped", "action.skipped", "workflow.failed", "machine.state")
		}},
		{Discover, DiscoverPayload{Hardware: agentproto.Hardware{MAC: "02:00:00:00:00:99", CPUs: 2, MemoryBytes: 1 << 30,
			NICs: []agentproto.NIC{{Name: "eth0", MAC: "02:00:00:00:00:99"}}}, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			got, err := DecodeValue[DiscoverResult](r)
			if r.Err != nil || err != nil || got.MachineID != "m-020000000099" || !got.Created {
				t.Fatalf("result = %+v (err %v, decode %v), want machine m-020000000099 created", r, r.Err, err)
			}
			checkMachineState(t, e, "m-020000000099", store.StateDiscovered, "")
			macByOwner(t, "02:00:00:00:00:99", "m-020000000099")
		}},
		{PutOrder, Put[store.Order]{Object: &store.Order{ID: "o1", Action: store.OrderPowerOn, MachineID: "m1"}, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			o, err := DecodeValue[store.Order](r)
			if r.Err != nil || err != nil || o.State != store.OrderRunning || len(o.Jobs) != 1 || o.Jobs[0] != "o1-power" {
				t.Fatalf("result = %+v (err %v, decode %v), want a running order with job o1-power", r, r.Err, err)
			}
		}},
		{StartJob, JobStart{Job: "o1-power", Attempt: 1, Deadline: fsmT1, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			j, err := DecodeValue[store.Job](r)
			if r.Err != nil || err != nil || j.State != store.JobRunning || j.Attempt != 1 {
				t.Fatalf("result = %+v (err %v, decode %v), want job running its first attempt", r, r.Err, err)
			}
		}},
		{FinishJob, JobFinish{Job: "o1-power", Attempt: 1, Result: store.JobResult{OK: true, Power: "on"}, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			j, err := DecodeValue[store.Job](r)
			if r.Err != nil || err != nil || j.State != store.JobSucceeded {
				t.Fatalf("result = %+v (err %v, decode %v), want job succeeded", r, r.Err, err)
			}
			e.view(func(tx *store.Tx) error {
				o, _ := store.Get[store.Order](tx, "o1")
				m, _ := store.Get[store.Machine](tx, "m1")
				if o.State != store.OrderSucceeded || m.Power != "on" {
					t.Errorf("order %s, machine power %q: want succeeded and on", o.State, m.Power)
				}
				return nil
			})
		}},
		{SetPower, Power{Machine: "m1", Power: "off", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil {
				t.Fatalf("result = %+v", r)
			}
			checkEventKinds(t, e, "machine.created", "workflow.created", "machine.state", appended[0].Kind, appended[1].Kind,
				"action.skipped", "action.skipped", "workflow.failed", "machine.state", "machine.discovered",
				"bmc.job.created", "order.created", "bmc.job.running", "bmc.job.succeeded", "power.on", "order.succeeded", "power.off")
		}},
		{DeleteOrder, Delete{Key: "o1", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Order](t, e, r, "o1", i)
		}},
		{DeleteJob, Delete{Key: "o1-power", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Job](t, e, r, "o1-power", i)
		}},
		{DeleteWorkflow, Delete{Key: "wf1", Expect: 11, Time: fsmT0, Events: []store.Event{wfEvent}}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Workflow](t, e, r, "wf1", i)
		}},
		{DeleteMachine, Delete{Key: "m-020000000099", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Machine](t, e, r, "m-020000000099", i)
		}},
		{DeleteLease, Delete{Key: "198.18.0.100", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Lease](t, e, r, "198.18.0.100", i)
		}},
		{DeleteMachine, Delete{Key: "m1", Expect: 16, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Machine](t, e, r, "m1", i)
			macByOwner(t, "02:00:00:00:00:01", "")
			macByOwner(t, "02:00:00:00:00:02", "")
			if idx := rawDump(t, e.db)["mac_index"]; len(idx) != 0 {
				t.Errorf("MAC index after deleting the only machine: %q", idx)
			}
		}},
		{DeleteTemplate, Delete{Key: "install", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Template](t, e, r, "install", i)
		}},
		{DeleteImage, Delete{Key: "debian", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Image](t, e, r, "debian", i)
		}},
		{DeleteSubnet, Delete{Key: "lab", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Subnet](t, e, r, "lab", i)
		}},
		{DeleteToken, Delete{Key: "tok1", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Token](t, e, r, "tok1", i)
		}},
		{DeleteMember, Delete{Key: "n1", Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDeleted[store.Member](t, e, r, "n1", i)
		}},
		{Noop, nil, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || r.Index != i || r.Value != nil || r.Object != nil {
				t.Fatalf("result = %+v", r)
			}
		}},
		{ApplyDesired, DesiredPayload{Desired: store.Desired{Revision: 1, Changes: []store.DesiredChange{
			{Kind: store.DesiredImage, Key: "sync", Object: mustJSON(t, fxImage("sync"))}}}, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 1, true, 0)
		}},
		{ApplyDesired, DesiredPayload{Desired: store.Desired{Revision: 2, Changes: []store.DesiredChange{
			{Kind: store.DesiredImage, Key: "sync", Deleted: true}}}, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			checkDesired(t, e, r, 2, true, 0)
		}},
		{SyncAcked, AckedPayload{Seq: 18, Time: fsmT0}, func(t *testing.T, r Result, i uint64) {
			if r.Err != nil || e.syncState().AckedSeq != 18 {
				t.Fatalf("result = %+v, sync state %+v; want acked 18", r, e.syncState())
			}
		}},
	}

	covered := map[Type]bool{}
	var before map[string]map[string]string
	for i, s := range steps {
		index := uint64(i + 1)
		covered[s.typ] = true
		t.Run(fmt.Sprintf("%02d-type%d", index, s.typ), func(t *testing.T) {
			data := []byte{byte(s.typ)}
			if s.payload != nil {
				data = encodeCmd(t, s.typ, s.payload)
			}
			before = rawDump(t, e.db)
			r := e.apply(commandLog(index, data))
			s.check(t, r, index)
			if got := e.db.AppliedIndex(); got != index {
				t.Errorf("AppliedIndex = %d, want %d", got, index)
			}
			if s.typ == Noop {
				if diff := cmp.Diff(withApplied(before, index), rawDump(t, e.db)); diff != "" {
					t.Errorf("Noop changed more than the applied index (-want +got):\n%s", diff)
				}
			}
		})
	}
	for typ := range applyTable {
		if !covered[typ] {
			t.Errorf("command type %d is in applyTable but not tested here", typ)
		}
	}

	// Every object but the settings is gone again; the events stay.
	s := readState(t, e.db)
	if n := len(s.Machines) + len(s.Subnets) + len(s.Leases) + len(s.Images) + len(s.Templates) + len(s.Workflows) + len(s.Members) + len(s.Tokens); n != 0 {
		t.Errorf("%d objects left after deleting everything: %+v", n, s)
	}
	if len(s.Settings) != 1 || len(s.Events) != 18 || len(s.MACs) != 0 {
		t.Errorf("settings %d, events %d, MACs %d; want 1, 18, 0", len(s.Settings), len(s.Events), len(s.MACs))
	}
}

// TestApplyUpdateKeepsCreated: a second put of an object keeps its
// creation time, takes the new index as its version and moves its MACs.
func TestApplyUpdateKeepsCreated(t *testing.T) {
	e := newFSMEnv(t)
	e.applyOK(1, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: fsmT0})
	r := e.applyOK(2, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:09"), Expect: 1, Time: fsmT1})
	got, err := DecodeValue[store.Machine](r)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 2 || !got.CreatedAt.Equal(fsmT0) || !got.UpdatedAt.Equal(fsmT1) {
		t.Errorf("meta after update = %+v, want version 2, created %v, updated %v", got.Meta, fsmT0, fsmT1)
	}
	s := readState(t, e.db)
	if diff := cmp.Diff(map[string]string{"02:00:00:00:00:09": "m1"}, s.MACs); diff != "" {
		t.Errorf("MAC index (-want +got):\n%s", diff)
	}
	e.view(func(tx *store.Tx) error {
		if _, err := tx.MachineByMAC("02:00:00:00:00:01"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("old MAC still indexed: %v", err)
		}
		return nil
	})
}

// fsmBase is the state the domain error cases start from: indexes 1-4.
func fsmBase(t *testing.T) *fsmEnv {
	e := newFSMEnv(t)
	e.applyOK(1, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: fsmT0})
	e.applyOK(2, PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: fsmT0})
	e.applyOK(3, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01"), Time: fsmT0})
	e.applyOK(4, PutImage, Put[store.Image]{Object: fxImage("debian"), Time: fsmT0, Events: []store.Event{{Kind: "image.added"}}})
	return e
}

func TestApplyDomainErrors(t *testing.T) {
	badTemplate := fxTemplate("loop")
	badTemplate.Actions[0].Needs = []string{"write"}
	badSubnet := fxSubnet("bad")
	badSubnet.CIDR = "198.18.0.0/33"

	tests := map[string]struct {
		typ     Type
		payload any
		code    string
		field   string
	}{
		"put with wrong expect": {
			typ: PutSubnet, payload: Put[store.Subnet]{Object: fxSubnet("lab"), Expect: 2, Time: fsmT1},
			code: errs.CodeConflict,
		},
		"put of a new object with expect": {
			typ: PutSubnet, payload: Put[store.Subnet]{Object: fxSubnet("new"), Expect: 1, Time: fsmT1},
			code: errs.CodeConflict,
		},
		"machine with wrong expect and events": {
			typ: PutMachine, payload: Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:07"), Expect: 1, Time: fsmT1, Events: []store.Event{{Kind: "machine.updated"}}},
			code: errs.CodeConflict,
		},
		"MAC owned by another machine": {
			typ: PutMachine, payload: Put[store.Machine]{Object: fxMachine("m2", "02:00:00:00:00:05", "02:00:00:00:00:01"), Time: fsmT1},
			code: errs.CodeConflict,
		},
		"workflow on a missing machine": {
			typ: PutWorkflow, payload: Put[store.Workflow]{Object: fxWorkflow("wf1", "ghost"), Time: fsmT1},
			code: errs.CodeInvalid, field: "machine_id",
		},
		"workflow with a missing template": {
			typ: PutWorkflow, payload: Put[store.Workflow]{Object: &store.Workflow{ID: "wf1", MachineID: "m1", Template: "nope", Purpose: store.PurposeProvision}, Time: fsmT1},
			code: errs.CodeInvalid, field: "template",
		},
		"invalid subnet": {
			typ: PutSubnet, payload: Put[store.Subnet]{Object: badSubnet, Time: fsmT1},
			code: errs.CodeInvalid, field: "cidr",
		},
		"template with a cycle": {
			typ: PutTemplate, payload: Put[store.Template]{Object: badTemplate, Time: fsmT1},
			code: errs.CodeInvalid, field: "actions[1].needs[0]",
		},
		"invalid machine": {
			typ: PutMachine, payload: Put[store.Machine]{Object: fxMachine("m9", "not-a-mac"), Time: fsmT1},
			code: errs.CodeInvalid, field: "interfaces[0].mac",
		},
		"invalid lease": {
			typ: PutLease, payload: Put[store.Lease]{Object: fxLease("198.18.0"), Time: fsmT1},
			code: errs.CodeInvalid, field: "ip",
		},
		"invalid settings": {
			typ: PutSettings, payload: Put[store.Settings]{Object: &store.Settings{SiteName: "s", UnknownMachines: "boot"}, Time: fsmT1},
			code: errs.CodeInvalid, field: "unknown_machines",
		},
		"invalid member": {
			typ: PutMember, payload: Put[store.Member]{Object: &store.Member{ID: "n2", APIAddr: "x"}, Time: fsmT1},
			code: errs.CodeInvalid, field: "raft_addr",
		},
		"invalid token": {
			typ: PutToken, payload: Put[store.Token]{Object: &store.Token{ID: "t", Hash: "plain"}, Time: fsmT1},
			code: errs.CodeInvalid, field: "hash",
		},
		"invalid image": {
			typ: PutImage, payload: Put[store.Image]{Object: &store.Image{Name: "x", Type: store.ImageOS, Format: "raw"}, Time: fsmT1},
			code: errs.CodeInvalid, field: "url",
		},
		"put without object": {
			typ: PutImage, payload: Put[store.Image]{Time: fsmT1},
			code: errs.CodeInvalid, field: "object",
		},
		"valid put with an invalid event": {
			typ: PutImage, payload: Put[store.Image]{Object: fxImage("ubuntu"), Time: fsmT1, Events: []store.Event{{Kind: "ok"}, {Message: "no kind"}}},
			code: errs.CodeInvalid, field: "events[1].kind",
		},
		"append with an invalid second event": {
			typ: AppendEvents, payload: Events{Time: fsmT1, Events: []store.Event{{Kind: "ok"}, {Kind: ""}}},
			code: errs.CodeInvalid, field: "events[1].kind",
		},
		"append with an overlong message": {
			typ: AppendEvents, payload: Events{Time: fsmT1, Events: []store.Event{{Kind: "k", Message: strings.Repeat("x", 5000)}}},
			code: errs.CodeInvalid, field: "events[0].message",
		},
		"append nothing": {
			typ: AppendEvents, payload: Events{Time: fsmT1},
			code: errs.CodeInvalid, field: "events",
		},
		"delete a missing object": {
			typ: DeleteImage, payload: Delete{Key: "nope", Time: fsmT1},
			code: errs.CodeNotFound,
		},
		"delete with wrong expect": {
			typ: DeleteSubnet, payload: Delete{Key: "lab", Expect: 3, Time: fsmT1},
			code: errs.CodeConflict,
		},
		"delete machine with wrong expect": {
			typ: DeleteMachine, payload: Delete{Key: "m1", Expect: 1, Time: fsmT1, Events: []store.Event{{Kind: "machine.deleted"}}},
			code: errs.CodeConflict,
		},
		"delete with an invalid event": {
			typ: DeleteImage, payload: Delete{Key: "debian", Time: fsmT1, Events: []store.Event{{}}},
			code: errs.CodeInvalid, field: "events[0].kind",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := fsmBase(t)
			before := rawDump(t, e.db)
			r := e.apply(commandLog(5, encodeCmd(t, tc.typ, tc.payload)))
			if r.Err == nil {
				t.Fatalf("result = %+v, want a refusal", r)
			}
			got := struct {
				Index       uint64
				Code, Field string
			}{r.Index, r.Err.Code, r.Err.Field}
			want := struct {
				Index       uint64
				Code, Field string
			}{5, tc.code, tc.field}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("refusal (-want +got):\n%s\n(message %q)", diff, r.Err.Message)
			}
			if r.Value != nil || r.Object != nil {
				t.Errorf("refused command returned a value: %+v", r)
			}
			if _, err := decodeResult(r); !errors.Is(err, sentinel(tc.code)) {
				t.Errorf("decodeResult error %v does not match %v", err, sentinel(tc.code))
			}
			if diff := cmp.Diff(withApplied(before, 5), rawDump(t, e.db)); diff != "" {
				t.Errorf("refused command changed the store beyond the applied index (-want +got):\n%s", diff)
			}
			if got := e.db.AppliedIndex(); got != 5 {
				t.Errorf("AppliedIndex = %d, want 5", got)
			}
		})
	}
}

func sentinel(code string) error {
	switch code {
	case errs.CodeConflict:
		return errs.ErrConflict
	case errs.CodeNotFound:
		return errs.ErrNotFound
	}
	return errs.ErrInvalid
}

// TestApplyBatchMixed: refusals inside a batch change nothing, the other
// commands of the batch commit, and results keep their order.
func TestApplyBatchMixed(t *testing.T) {
	e := fsmBase(t)
	logs := []*raft.Log{
		commandLog(5, encodeCmd(t, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab2"), Time: fsmT0})),
		commandLog(6, encodeCmd(t, PutMachine, Put[store.Machine]{Object: fxMachine("m2", "02:00:00:00:00:01"), Time: fsmT0})), // m1's MAC
		commandLog(7, encodeCmd(t, PutMachine, Put[store.Machine]{Object: fxMachine("m3", "02:00:00:00:00:03"), Time: fsmT0})),
		commandLog(8, encodeCmd(t, DeleteSubnet, Delete{Key: "lab", Expect: 99, Time: fsmT0})),
		commandLog(9, encodeCmd(t, DeleteSubnet, Delete{Key: "lab", Expect: 1, Time: fsmT0})),
		commandLog(10, encodeCmd(t, DeleteSubnet, Delete{Key: "lab", Time: fsmT0})), // already gone
	}
	resps := e.fsm.ApplyBatch(logs)
	if len(resps) != len(logs) {
		t.Fatalf("%d results for %d logs", len(resps), len(logs))
	}
	wantCodes := []string{"", errs.CodeConflict, "", errs.CodeConflict, "", errs.CodeNotFound}
	for i, resp := range resps {
		r := resp.(Result)
		code := ""
		if r.Err != nil {
			code = r.Err.Code
		}
		if r.Index != logs[i].Index || code != wantCodes[i] {
			t.Errorf("result %d = index %d code %q, want index %d code %q", i, r.Index, code, logs[i].Index, wantCodes[i])
		}
	}
	s := readState(t, e.db)
	if s.Applied != 10 {
		t.Errorf("AppliedIndex = %d, want 10", s.Applied)
	}
	var ids, subnets []string
	for _, m := range s.Machines {
		ids = append(ids, m.ID)
	}
	for _, sn := range s.Subnets {
		subnets = append(subnets, sn.Name)
	}
	if diff := cmp.Diff([]string{"m1", "m3"}, ids); diff != "" {
		t.Errorf("machines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"lab2"}, subnets); diff != "" {
		t.Errorf("subnets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"02:00:00:00:00:01": "m1", "02:00:00:00:00:03": "m3"}, s.MACs); diff != "" {
		t.Errorf("MAC index (-want +got):\n%s", diff)
	}
}

func TestApplyReplay(t *testing.T) {
	e := newFSMEnv(t)
	var logs []*raft.Log
	for i := range 7 {
		id := fmt.Sprintf("m%d", i+1)
		logs = append(logs, commandLog(uint64(i+1), encodeCmd(t, PutMachine, Put[store.Machine]{
			Object: fxMachine(id, fmt.Sprintf("02:00:00:00:01:%02x", i+1)), Time: fsmT0,
			Events: []store.Event{{Kind: "machine.created", MachineID: id}},
		})))
	}
	for _, l := range logs[:5] {
		e.apply(l)
	}
	state := readState(t, e.db)
	dump := rawDump(t, e.db)
	if state.Applied != 5 || len(state.Machines) != 5 || len(state.Events) != 5 {
		t.Fatalf("after 5 logs: applied %d, %d machines, %d events", state.Applied, len(state.Machines), len(state.Events))
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if diff := cmp.Diff(dump, rawDump(t, e.db)); diff != "" {
			t.Errorf("replay changed the store (-want +got):\n%s", diff)
		}
		if got := e.db.AppliedIndex(); got != 5 {
			t.Errorf("AppliedIndex = %d after replay, want 5", got)
		}
	}

	t.Run("one log", func(t *testing.T) {
		for _, l := range []*raft.Log{logs[2], logs[4], logs[0]} {
			r := e.apply(l)
			if diff := cmp.Diff(Result{Index: l.Index}, r); diff != "" {
				t.Errorf("replayed result (-want +got):\n%s", diff)
			}
		}
		unchanged(t)
	})

	t.Run("different data at an applied index", func(t *testing.T) {
		// Skipping goes by index, not by content: the store already holds
		// whatever index 4 was.
		other := commandLog(4, encodeCmd(t, PutSubnet, Put[store.Subnet]{Object: fxSubnet("sneaky"), Time: fsmT0}))
		if r := e.apply(other); r.Err != nil || r.Value != nil || r.Object != nil {
			t.Errorf("result = %+v", r)
		}
		bad := commandLog(3, []byte{99, '{'}) // would panic if applied
		e.apply(bad)
		unchanged(t)
	})

	t.Run("whole batch", func(t *testing.T) {
		resps := e.fsm.ApplyBatch(logs[:5])
		for i, resp := range resps {
			if diff := cmp.Diff(Result{Index: logs[i].Index}, resp); diff != "" {
				t.Errorf("replayed result %d (-want +got):\n%s", i, diff)
			}
		}
		unchanged(t)
	})

	t.Run("overlapping batch", func(t *testing.T) {
		resps := e.fsm.ApplyBatch(logs[3:])
		for i, resp := range resps {
			r := resp.(Result)
			idx := logs[3+i].Index
			applied := idx > 5
			if r.Index != idx || r.Err != nil || (r.Object != nil || r.Value != nil) != applied {
				t.Errorf("result for index %d = %+v, applied=%v", idx, r, applied)
			}
		}
		s := readState(t, e.db)
		if s.Applied != 7 || len(s.Machines) != 7 || len(s.Events) != 7 {
			t.Errorf("after overlap: applied %d, %d machines, %d events; want 7, 7, 7", s.Applied, len(s.Machines), len(s.Events))
		}
		for i, ev := range s.Events {
			if ev.Seq != uint64(i+1) || ev.Index != uint64(i+1) {
				t.Errorf("event %d: seq %d index %d", i, ev.Seq, ev.Index)
			}
		}
	})
}

// TestApplyNonCommandLogs: configuration (and any other non-command) logs
// advance the applied index and change nothing else.
func TestApplyNonCommandLogs(t *testing.T) {
	e := newFSMEnv(t)
	before := rawDump(t, e.db)
	logs := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration, Data: []byte("not a command")},
		{Index: 2, Term: 1, Type: raft.LogNoop},
		{Index: 3, Term: 2, Type: raft.LogBarrier},
	}
	for i, resp := range e.fsm.ApplyBatch(logs) {
		if diff := cmp.Diff(Result{Index: logs[i].Index}, resp); diff != "" {
			t.Errorf("result %d (-want +got):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff(withApplied(before, 3), rawDump(t, e.db)); diff != "" {
		t.Errorf("store (-want +got):\n%s", diff)
	}
}

// TestApplyBatchMany: a large batch commits every command, numbers events
// in log order and leaves the applied index at the last log.
func TestApplyBatchMany(t *testing.T) {
	e := newFSMEnv(t)
	const n = 500
	var logs []*raft.Log
	index := uint64(10)
	for i := range n {
		var data []byte
		if i%5 == 4 {
			data = encodeCmd(t, AppendEvents, Events{Time: fsmT0, Events: []store.Event{{Kind: "tick", Message: fmt.Sprint(i)}}})
		} else {
			id := fmt.Sprintf("m%03d", i)
			data = encodeCmd(t, PutMachine, Put[store.Machine]{Object: fxMachine(id, fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)), Time: fsmT0})
		}
		logs = append(logs, commandLog(index, data))
		index += 1 + uint64(i%3) // gaps: the entries between are not commands
	}
	resps := e.fsm.ApplyBatch(logs)
	if len(resps) != n {
		t.Fatalf("%d results, want %d", len(resps), n)
	}
	for i, resp := range resps {
		r := resp.(Result)
		if r.Index != logs[i].Index || r.Err != nil {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
	s := readState(t, e.db)
	if want := logs[n-1].Index; s.Applied != want {
		t.Errorf("AppliedIndex = %d, want %d", s.Applied, want)
	}
	if len(s.Machines) != n*4/5 || len(s.MACs) != n*4/5 {
		t.Errorf("%d machines, %d MACs; want %d", len(s.Machines), len(s.MACs), n*4/5)
	}
	if len(s.Events) != n/5 {
		t.Fatalf("%d events, want %d", len(s.Events), n/5)
	}
	for i, ev := range s.Events {
		wantLog := logs[i*5+4]
		if ev.Seq != uint64(i+1) || ev.Index != wantLog.Index || ev.Message != fmt.Sprint(i*5+4) {
			t.Errorf("event %d = seq %d index %d %q; want seq %d index %d", i, ev.Seq, ev.Index, ev.Message, i+1, wantLog.Index)
		}
	}
	for _, m := range s.Machines {
		var i int
		fmt.Sscanf(m.ID, "m%d", &i)
		if m.Version != logs[i].Index {
			t.Errorf("machine %s version %d, want %d", m.ID, m.Version, logs[i].Index)
		}
	}
}

func TestApplyUnknownCommand(t *testing.T) {
	e := fsmBase(t)
	good := func(index uint64) *raft.Log {
		return commandLog(index, encodeCmd(t, PutSubnet, Put[store.Subnet]{Object: fxSubnet(fmt.Sprintf("s%d", index)), Time: fsmT0}))
	}

	panics := map[string][]*raft.Log{
		"unknown type":                 {commandLog(5, []byte{99, '{', '}'})},
		"highest type without bit":     {commandLog(5, []byte{127})},
		"empty command":                {commandLog(5, nil)},
		"unknown type after good":      {good(5), good(6), commandLog(7, []byte{100, '{', '}'})},
		"unknown type before good":     {commandLog(5, []byte{101}), good(6)},
		"ignorable then unknown":       {commandLog(5, []byte{byte(IgnoreUnknown | 99)}), commandLog(6, []byte{102})},
		"undecodable known command":    {commandLog(5, []byte{byte(PutSubnet), '{', '"'})},
		"known command of wrong shape": {commandLog(5, []byte(string(rune(PutMachine))+`{"object":"a string"}`))},
	}
	for name, logs := range panics {
		t.Run(name, func(t *testing.T) {
			before := rawDump(t, e.db)
			v := mustPanic(t, func() { e.fsm.ApplyBatch(logs) })
			msg := panicText(v)
			if strings.HasPrefix(name, "undecodable") || strings.HasPrefix(name, "known command") {
				if !strings.Contains(msg, "decode command at index 5") {
					t.Errorf("panic %q does not say the command did not decode", msg)
				}
			} else {
				if !strings.Contains(msg, "unknown command type") {
					t.Errorf("panic %q does not mention %q", msg, "unknown command type")
				}
				if err, ok := v.(error); !ok || !errors.Is(err, errUnknownCommand) {
					t.Errorf("panic value %#v is not errUnknownCommand", v)
				}
			}
			if diff := cmp.Diff(before, rawDump(t, e.db)); diff != "" {
				t.Errorf("a batch that panicked changed the store (-want +got):\n%s", diff)
			}
			if got := e.db.AppliedIndex(); got != 4 {
				t.Errorf("AppliedIndex = %d, want 4", got)
			}
		})
	}

	t.Run("ignorable", func(t *testing.T) {
		before := rawDump(t, e.db)
		r := e.apply(commandLog(5, []byte{byte(IgnoreUnknown | 99), '{', '}'}))
		if diff := cmp.Diff(Result{Index: 5}, r); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(withApplied(before, 5), rawDump(t, e.db)); diff != "" {
			t.Errorf("skipped command changed the store (-want +got):\n%s", diff)
		}
		// Ignorable commands mixed with real ones in a batch.
		resps := e.fsm.ApplyBatch([]*raft.Log{good(6), commandLog(7, []byte{255}), good(8)})
		if r := resps[1].(Result); r.Index != 7 || r.Err != nil || r.Object != nil || r.Value != nil {
			t.Errorf("ignorable result = %+v", r)
		}
		s := readState(t, e.db)
		if s.Applied != 8 || len(s.Subnets) != 3 {
			t.Errorf("applied %d, %d subnets; want 8 and 3", s.Applied, len(s.Subnets))
		}
	})

	t.Run("usable after a panic", func(t *testing.T) {
		r := e.apply(good(9))
		if r.Err != nil || r.Index != 9 || e.db.AppliedIndex() != 9 {
			t.Errorf("apply after panics: %+v, applied %d", r, e.db.AppliedIndex())
		}
	})
}

// memSink is a raft.SnapshotSink over a buffer.
type memSink struct {
	buf               bytes.Buffer
	failWrite         error
	closed, cancelled bool
}

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrite != nil {
		return 0, s.failWrite
	}
	return s.buf.Write(p)
}
func (s *memSink) Bytes() []byte { return s.buf.Bytes() }
func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

type trackedReader struct {
	io.Reader
	closed bool
}

func (r *trackedReader) Close() error { r.closed = true; return nil }

// populateAll applies one of each entity and some events, ending at
// index 10.
func populateAll(t *testing.T, e *fsmEnv) {
	t.Helper()
	e.applyOK(1, PutSettings, Put[store.Settings]{Object: fxSettings(), Time: fsmT0})
	e.applyOK(2, PutMember, Put[store.Member]{Object: fxMember("n1"), Time: fsmT0})
	e.applyOK(3, PutToken, Put[store.Token]{Object: fxToken("tok1"), Time: fsmT0})
	e.applyOK(4, PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: fsmT0})
	e.applyOK(5, PutImage, Put[store.Image]{Object: fxImage("debian"), Time: fsmT0})
	e.applyOK(6, PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: fsmT0})
	e.applyOK(7, PutMachine, Put[store.Machine]{Object: fxMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02"), Time: fsmT0, Events: []store.Event{{Kind: "machine.created", MachineID: "m1"}}})
	e.applyOK(8, PutLease, Put[store.Lease]{Object: fxLease("198.18.0.100"), Time: fsmT0})
	e.applyOK(9, PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: fsmT0})
	e.applyOK(10, AppendEvents, Events{Time: fsmT1, Events: []store.Event{{Kind: "a", Fields: map[string]string{"x": "1"}}, {Kind: "b", Message: "two"}}})
}

func persist(t *testing.T, f *FSM) *memSink {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.cancelled {
		t.Errorf("sink closed=%v cancelled=%v, want closed only", sink.closed, sink.cancelled)
	}
	return sink
}

func TestSnapshotRestore(t *testing.T) {
	src := newFSMEnv(t)
	populateAll(t, src)
	want := readState(t, src.db)
	if want.Applied != 10 || len(want.Events) != 5 {
		t.Fatalf("source: applied %d, %d events", want.Applied, len(want.Events))
	}

	// The snapshot is the state when Snapshot was called, whatever is
	// applied before Persist runs (Raft persists in the background).
	snap, err := src.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	src.applyOK(11, PutSubnet, Put[store.Subnet]{Object: fxSubnet("later"), Time: fsmT1})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()

	dst := newFSMEnv(t)
	dst.applyOK(1, PutImage, Put[store.Image]{Object: fxImage("only-in-dst"), Time: fsmT1}) // replaced by the restore
	rc := &trackedReader{Reader: bytes.NewReader(sink.Bytes())}
	if err := dst.fsm.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Error("Restore did not close the snapshot reader")
	}
	got := readState(t, dst.db)

	t.Run("applied index", func(t *testing.T) {
		if got.Applied != 10 {
			t.Errorf("AppliedIndex = %d, want 10", got.Applied)
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
		// Raft replays the logs after the snapshot; those before are
		// skipped.
		r := dst.apply(commandLog(7, encodeCmd(t, DeleteMachine, Delete{Key: "m1", Time: fsmT1})))
		if r.Err != nil || dst.db.AppliedIndex() != 10 {
			t.Fatalf("replay at 7: %+v, applied %d", r, dst.db.AppliedIndex())
		}
		dst.applyOK(11, PutSubnet, Put[store.Subnet]{Object: fxSubnet("later"), Time: fsmT1})
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

func TestSnapshotPersistFails(t *testing.T) {
	e := newFSMEnv(t)
	populateAll(t, e)
	snap, err := e.fsm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{failWrite: errors.New("disk full")}
	if err := snap.Persist(sink); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Persist = %v, want the write error", err)
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink closed=%v cancelled=%v, want cancelled only", sink.closed, sink.cancelled)
	}
	snap.Release()
	snap.Release()
	// The store is not held by the released snapshot: a restore can swap it.
	good := persist(t, e.fsm)
	if err := e.fsm.Restore(io.NopCloser(bytes.NewReader(good.Bytes()))); err != nil {
		t.Fatalf("Restore after a failed Persist: %v", err)
	}
}

func TestRestoreGarbage(t *testing.T) {
	e := newFSMEnv(t)
	populateAll(t, e)
	before := rawDump(t, e.db)
	good := persist(t, e.fsm).Bytes()
	truncated := good[:len(good)/2]
	garbage := bytes.Repeat([]byte("not a bbolt file "), 1000)
	for name, data := range map[string][]byte{"garbage": garbage, "truncated": truncated, "empty": nil, "short": []byte("x")} {
		t.Run(name, func(t *testing.T) {
			rc := &trackedReader{Reader: bytes.NewReader(data)}
			err := e.fsm.Restore(rc)
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Restore = %v, want ErrCorrupt", err)
			}
			if !rc.closed {
				t.Error("Restore did not close the reader")
			}
			if diff := cmp.Diff(before, rawDump(t, e.db)); diff != "" {
				t.Errorf("failed Restore changed the store (-want +got):\n%s", diff)
			}
		})
	}
	e.applyOK(11, PutSubnet, Put[store.Subnet]{Object: fxSubnet("after"), Time: fsmT1})
}

// An in-memory Raft cluster whose nodes each apply to their own store
// through the FSM.

type clusterNode struct {
	id      raft.ServerID
	addr    raft.ServerAddress
	db      *store.DB
	logs    *raft.InmemStore
	snaps   *raft.InmemSnapshotStore
	trans   *raft.InmemTransport
	raft    *raft.Raft
	stopped bool
}

type testCluster struct {
	t     *testing.T
	nodes []*clusterNode
	rafts []*raft.Raft // every Raft ever started, for cleanup
}

func clusterConfig(t *testing.T, id raft.ServerID) *raft.Config {
	conf := raft.DefaultConfig()
	conf.LocalID = id
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.BatchApplyCh = true
	conf.MaxAppendEntries = 64
	conf.SnapshotThreshold = 1 << 30
	conf.SnapshotInterval = time.Hour
	conf.TrailingLogs = 4
	conf.NoSnapshotRestoreOnStart = true
	conf.Logger = newHCLog(fsmTestLogger(t).With("node", string(id)))
	return conf
}

func newTestCluster(t *testing.T, n int) *testCluster {
	c := &testCluster{t: t}
	t.Cleanup(c.shutdown)
	var servers []raft.Server
	for i := range n {
		node := c.addNode(fmt.Sprintf("node%d", i+1))
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: node.id, Address: node.addr})
	}
	for _, node := range c.nodes {
		node.start(t, c)
		if err := node.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
			t.Fatalf("bootstrap %s: %v", node.id, err)
		}
	}
	return c
}

// addNode creates a node's store, Raft stores and transport, connected to
// every other node, without starting Raft.
func (c *testCluster) addNode(id string) *clusterNode {
	t := c.t
	db, err := store.Open(filepath.Join(t.TempDir(), "site.db"))
	if err != nil {
		t.Fatal(err)
	}
	addr, trans := raft.NewInmemTransport(raft.ServerAddress(id))
	node := &clusterNode{
		id: raft.ServerID(id), addr: addr, db: db,
		logs: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore(), trans: trans,
	}
	for _, other := range c.nodes {
		other.trans.Connect(addr, trans)
		trans.Connect(other.addr, other.trans)
	}
	c.nodes = append(c.nodes, node)
	return node
}

func (n *clusterNode) start(t *testing.T, c *testCluster) {
	r, err := raft.NewRaft(clusterConfig(t, n.id), NewFSM(n.db, fsmTestLogger(t).With("node", string(n.id))), n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		t.Fatalf("start %s: %v", n.id, err)
	}
	n.raft, n.stopped = r, false
	c.rafts = append(c.rafts, r)
}

// stop shuts a node's Raft down and cuts it off the network; its stores
// stay for a restart.
func (c *testCluster) stop(n *clusterNode) {
	if err := n.raft.Shutdown().Error(); err != nil {
		c.t.Fatalf("shutdown %s: %v", n.id, err)
	}
	for _, other := range c.nodes {
		if other != n {
			other.trans.Disconnect(n.addr)
		}
	}
	n.trans.DisconnectAll()
	n.stopped = true
}

// restart starts a stopped node again over the same store, log and
// snapshots, with a fresh transport at the same address.
func (c *testCluster) restart(n *clusterNode) {
	_, n.trans = raft.NewInmemTransport(n.addr)
	for _, other := range c.nodes {
		if other != n {
			other.trans.Connect(n.addr, n.trans)
			n.trans.Connect(other.addr, other.trans)
		}
	}
	n.start(c.t, c)
}

func (c *testCluster) shutdown() {
	for _, r := range c.rafts {
		if err := r.Shutdown().Error(); err != nil {
			c.t.Errorf("shutdown: %v", err)
		}
	}
	for _, n := range c.nodes {
		n.trans.Close()
		if err := n.db.Close(); err != nil {
			c.t.Errorf("close store of %s: %v", n.id, err)
		}
	}
}

func (c *testCluster) live() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if !n.stopped {
			out = append(out, n)
		}
	}
	return out
}

// leader waits for one live node to lead.
func (c *testCluster) leader() *clusterNode {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, n := range c.live() {
			if n.raft.State() == raft.Leader {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatal("no leader elected within 10s")
	return nil
}

// apply commits a command through the current leader, following leader
// changes, and returns its result and log index.
func (c *testCluster) apply(typ Type, payload any) (Result, uint64) {
	c.t.Helper()
	cmd := encodeCmd(c.t, typ, payload)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := c.leader().raft.Apply(cmd, time.Second)
		err := f.Error()
		if err == nil {
			r, ok := f.Response().(Result)
			if !ok {
				c.t.Fatalf("response %T, want Result", f.Response())
			}
			if r.Err != nil || r.Index != f.Index() {
				c.t.Fatalf("command %d: result %+v (err %v), log index %d", typ, r, r.Err, f.Index())
			}
			return r, f.Index()
		}
		// A lost leadership may still have committed the command: every
		// command used here is idempotent, so retrying is safe.
		if !errors.Is(err, raft.ErrNotLeader) && !errors.Is(err, raft.ErrLeadershipLost) && !errors.Is(err, raft.ErrEnqueueTimeout) {
			c.t.Fatalf("apply: %v", err)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("apply: no leader took the command: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// converge waits until every node in nodes has applied idx and checks that
// their stores hold the same content.
func (c *testCluster) converge(idx uint64, nodes ...*clusterNode) storeState {
	t := c.t
	t.Helper()
	for _, n := range nodes {
		deadline := time.After(10 * time.Second)
		for {
			ch := n.db.Changed()
			if n.db.AppliedIndex() >= idx {
				break
			}
			select {
			case <-ch:
			case <-time.After(20 * time.Millisecond):
			case <-deadline:
				t.Fatalf("%s applied %d, not %d, within 10s", n.id, n.db.AppliedIndex(), idx)
			}
		}
	}
	first := readState(t, nodes[0].db)
	firstRaw := withApplied(rawDump(t, nodes[0].db), 0)
	for _, n := range nodes[1:] {
		s := readState(t, n.db)
		s.Applied = first.Applied // may differ by entries that change nothing
		if diff := cmp.Diff(first, s); diff != "" {
			t.Errorf("%s and %s differ (-%s +%s):\n%s", nodes[0].id, n.id, nodes[0].id, n.id, diff)
		}
		if diff := cmp.Diff(firstRaw, withApplied(rawDump(t, n.db), 0)); diff != "" {
			t.Errorf("%s and %s differ in raw content (-%s +%s):\n%s", nodes[0].id, n.id, nodes[0].id, n.id, diff)
		}
	}
	return first
}

func machineIDs(s storeState) []string {
	var ids []string
	for _, m := range s.Machines {
		ids = append(ids, m.ID)
	}
	return ids
}

func TestCluster(t *testing.T) {
	c := newTestCluster(t, 3)

	// Writes on the leader reach every store.
	c.apply(PutSubnet, Put[store.Subnet]{Object: fxSubnet("lab"), Time: fsmT0})
	c.apply(PutTemplate, Put[store.Template]{Object: fxTemplate("install"), Time: fsmT0})
	c.apply(PutImage, Put[store.Image]{Object: fxImage("debian"), Time: fsmT0})
	for i := range 5 {
		id := fmt.Sprintf("m%d", i+1)
		c.apply(PutMachine, Put[store.Machine]{
			Object: fxMachine(id, fmt.Sprintf("02:00:00:00:02:%02x", i+1)), Time: fsmT0,
			Events: []store.Event{{Kind: "machine.created", MachineID: id}},
		})
	}
	c.apply(PutWorkflow, Put[store.Workflow]{Object: fxWorkflow("wf1", "m1"), Time: fsmT0})
	_, idx := c.apply(AppendEvents, Events{Time: fsmT0, Events: []store.Event{{Kind: "cluster.test"}}})
	s := c.converge(idx, c.nodes...)
	if diff := cmp.Diff([]string{"m1", "m2", "m3", "m4", "m5"}, machineIDs(s)); diff != "" {
		t.Errorf("machines (-want +got):\n%s", diff)
	}
	if len(s.Subnets) != 1 || len(s.Templates) != 1 || len(s.Workflows) != 1 || len(s.MACs) != 5 || len(s.Events) < 6 {
		t.Errorf("content after the first writes: %d subnets, %d templates, %d workflows, %d MACs, %d events",
			len(s.Subnets), len(s.Templates), len(s.Workflows), len(s.MACs), len(s.Events))
	}

	// The leader goes away; a new one is elected and takes writes.
	old := c.leader()
	c.stop(old)
	oldApplied := old.db.AppliedIndex()
	next := c.leader()
	if next == old {
		t.Fatal("the stopped node still leads")
	}
	t.Logf("leader %s stopped at index %d; %s leads", old.id, oldApplied, next.id)
	c.apply(PutMachine, Put[store.Machine]{Object: fxMachine("m6", "02:00:00:00:02:06"), Time: fsmT1})
	c.apply(DeleteMachine, Delete{Key: "m2", Time: fsmT1})
	_, idx = c.apply(PutImage, Put[store.Image]{Object: fxImage("debian"), Time: fsmT1})
	s = c.converge(idx, c.live()...)
	if diff := cmp.Diff([]string{"m1", "m3", "m4", "m5", "m6"}, machineIDs(s)); diff != "" {
		t.Errorf("machines after failover (-want +got):\n%s", diff)
	}
	if len(s.Images) != 1 {
		t.Errorf("%d images after failover, want 1", len(s.Images))
	}
	if got := old.db.AppliedIndex(); got != oldApplied {
		t.Errorf("the stopped node's store moved from %d to %d", oldApplied, got)
	}

	// The old leader comes back over its own store and log: Raft replays
	// the log from the start, the FSM skips what the store already has,
	// and the node catches up.
	c.restart(old)
	_, idx = c.apply(PutToken, Put[store.Token]{Object: fxToken("after-restart"), Time: fsmT1})
	s = c.converge(idx, c.nodes...)
	if len(s.Tokens) != 1 || len(s.Machines) != 5 {
		t.Errorf("after restart: %d tokens, %d machines; want 1 and 5", len(s.Tokens), len(s.Machines))
	}

	// A new node joins after the leader compacted its log: it receives a
	// snapshot (FSM.Restore) and then the logs after it.
	leader := c.leader()
	if err := leader.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot on %s: %v", leader.id, err)
	}
	for i := range 8 { // more than TrailingLogs past the snapshot
		c.apply(AppendEvents, Events{Time: fsmT1, Events: []store.Event{{Kind: "filler", Message: fmt.Sprint(i)}}})
	}
	if err := c.leader().raft.Snapshot().Error(); err != nil {
		t.Fatalf("second snapshot: %v", err)
	}
	joiner := c.addNode("node4")
	joiner.start(t, c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.leader().raft.AddVoter(joiner.id, joiner.addr, 0, time.Second).Error()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("add voter: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, idx = c.apply(PutSubnet, Put[store.Subnet]{Object: fxSubnet("joined"), Time: fsmT1})
	s = c.converge(idx, c.nodes...)
	if len(s.Subnets) != 2 || len(s.Events) < 14 {
		t.Errorf("after join: %d subnets, %d events", len(s.Subnets), len(s.Events))
	}
	snaps, err := joiner.snaps.List()
	if err != nil || len(snaps) == 0 {
		t.Errorf("the joining node received no snapshot (%v): it was not restored through FSM.Restore", err)
	}
}
