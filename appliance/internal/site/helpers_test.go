package site

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
)

// The proposer's clock, as carried in commands.
var (
	ts0 = time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	ts1 = time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// env is a state machine over a fresh store, applied to directly, as the
// Raft node applies committed entries.
type env struct {
	t  *testing.T
	db *store.DB
	sm *StateMachine
}

func newEnv(t *testing.T) *env {
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
	return &env{t: t, db: db, sm: NewStateMachine(db, testLogger(t))}
}

// encodeCmd builds a command as the proposer does: CommitLease in its
// binary encoding, every other type as JSON.
func encodeCmd(t *testing.T, typ Type, payload any) []byte {
	t.Helper()
	if typ == CommitLease {
		cmd, err := encodeLeaseCommit(payload.(*store.Lease))
		if err != nil {
			t.Fatalf("encodeLeaseCommit: %v", err)
		}
		return cmd
	}
	cmd, err := command.Encode(typ, payload)
	if err != nil {
		t.Fatalf("Encode(%d): %v", typ, err)
	}
	return cmd
}

// entry is a committed log entry carrying one command.
func entry(index uint64, data []byte) command.Entry {
	return command.Entry{Index: index, Data: data}
}

// cmdEntry is an entry carrying the command typ with payload.
func cmdEntry(t *testing.T, index uint64, typ Type, payload any) command.Entry {
	t.Helper()
	return entry(index, encodeCmd(t, typ, payload))
}

// unpackBatch does what the Raft node does with a Batch log entry: it
// splits it into one entry per command, all at the entry's index.
func unpackBatch(t *testing.T, index uint64, batch []byte) []command.Entry {
	t.Helper()
	typ, payload := command.Split(batch)
	if typ != command.Batch {
		t.Fatalf("unpackBatch: type %d is not a batch", typ)
	}
	cmds, err := command.SplitBatch(payload)
	if err != nil {
		t.Fatalf("SplitBatch: %v", err)
	}
	entries := make([]command.Entry, len(cmds))
	for i, c := range cmds {
		entries[i] = entry(index, c)
	}
	return entries
}

// applyAll applies entries in one call and returns their Results.
func (e *env) applyAll(entries ...command.Entry) []Result {
	e.t.Helper()
	resps, err := e.sm.Apply(entries)
	if err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
	if len(resps) != len(entries) {
		e.t.Fatalf("%d results for %d entries", len(resps), len(entries))
	}
	out := make([]Result, len(resps))
	for i, resp := range resps {
		r, ok := resp.(Result)
		if !ok {
			e.t.Fatalf("Apply: result %d is %T, want Result", i, resp)
		}
		out[i] = r
	}
	return out
}

// apply applies one entry and returns its Result.
func (e *env) apply(en command.Entry) Result {
	e.t.Helper()
	return e.applyAll(en)[0]
}

// applyCmd applies the command typ with payload at index, refused or not.
func (e *env) applyCmd(index uint64, typ Type, payload any) Result {
	e.t.Helper()
	return e.apply(cmdEntry(e.t, index, typ, payload))
}

// applyOK applies a command that must succeed.
func (e *env) applyOK(index uint64, typ Type, payload any) Result {
	e.t.Helper()
	r := e.applyCmd(index, typ, payload)
	if r.Err != nil || r.Index != index {
		e.t.Fatalf("command %d at index %d: result %+v (err %v)", typ, index, r, r.Err)
	}
	return r
}

// putHeldImage stores img and records node n1 holding the artifact it
// points at, at index (one batch, as the Raft node applies a group
// commit): orders for it do not wait.
func (e *env) putHeldImage(index uint64, img *store.Image) {
	e.t.Helper()
	rs := e.applyAll(cmdEntry(e.t, index, PutImage, Put[store.Image]{Object: img, Time: t0}),
		cmdEntry(e.t, index, RecordArtifact, ArtifactHeld{Node: "n1", SHA256: img.SHA256, Size: int64(img.Size), Time: t0}))
	for _, r := range rs {
		if r.Err != nil {
			e.t.Fatalf("put image %s held by n1 at %d: %v", img.Name, index, r.Err)
		}
	}
}

func (e *env) view(fn func(tx *store.Tx) error) {
	e.t.Helper()
	if err := e.db.View(fn); err != nil {
		e.t.Fatalf("View: %v", err)
	}
}

// resultErr is a Result's refusal as an error, nil if there is none.
func resultErr(r Result) error {
	if r.Err == nil {
		return nil
	}
	return r.Err
}

// errCode is the code of a Result's refusal, "" if there is none.
func errCode(r Result) string {
	if r.Err == nil {
		return ""
	}
	return r.Err.Code
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

// persist writes a snapshot of the state machine's store, as Raft's
// Persist does, and returns its bytes.
func persist(t *testing.T, sm *StateMachine) []byte {
	t.Helper()
	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("WriteTo reported %d bytes, wrote %d", n, buf.Len())
	}
	return buf.Bytes()
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

// fxSubnet is subnet "lab", 198.18.0.0/24 (fxLease's), or another name's
// own /24 in 198.19.0.0/16: subnets may not overlap.
func fxSubnet(name string) *store.Subnet {
	net := "198.18.0"
	if name != "lab" {
		h := fnv.New32a()
		h.Write([]byte(name))
		net = fmt.Sprintf("198.19.%d", h.Sum32()%254+1)
	}
	return &store.Subnet{
		Name: name, CIDR: net + ".0/24", Gateway: net + ".1", DNS: []string{net + ".1"},
		Pools: []store.Range{{Start: net + ".100", End: net + ".200"}},
	}
}

func fxLease(ip string) *store.Lease {
	return &store.Lease{IP: ip, MAC: "02:00:00:00:00:01", MachineID: "m1", Subnet: "lab", State: store.LeaseActive, Starts: ts0, Expires: ts0.Add(time.Hour)}
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

func fxMember(id string) *store.Member {
	return &store.Member{ID: id, RaftAddr: "10.0.0.1:7000", APIAddr: "https://10.0.0.1:8443"}
}

func fxToken(id string) *store.Token {
	return &store.Token{ID: id, Name: "ops", Hash: strings.Repeat("5a", 32), Grant: access.Grant{Role: access.Operator}}
}

func fxSettings() *store.Settings {
	return &store.Settings{SiteName: "ams2", UnknownMachines: "exit"}
}

// checkMachineState checks a machine's state and current workflow.
func checkMachineState(t *testing.T, e *env, id string, state store.MachineState, wf string) {
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

// eventKinds returns the kinds of every event recorded, in order.
func eventKinds(t *testing.T, e *env) []string {
	t.Helper()
	var kinds []string
	e.view(func(tx *store.Tx) error {
		events, err := tx.EventsSince(0, 1000)
		for _, ev := range events {
			if ev.Kind == "artifact.present" && ev.Fields["node"] == "n1" && ev.Time.Equal(t0) {
				continue // a setup's (putHeldImage), not the test's
			}
			kinds = append(kinds, ev.Kind)
		}
		return err
	})
	return kinds
}

// checkEventKinds checks the kinds of every event recorded, in order.
func checkEventKinds(t *testing.T, e *env, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, eventKinds(t, e)); diff != "" {
		t.Errorf("event kinds (-want +got):\n%s", diff)
	}
}

// setMeta sets the Meta of a store object.
func setMeta(o any, m store.Meta) { *o.(store.Object).ObjectMeta() = m }

// checkPut checks a put's Result and the stored object: both equal want
// stamped with the command's index and time.
func checkPut[T any, P objectPtr[T]](t *testing.T, e *env, r Result, want P, index uint64) {
	t.Helper()
	if r.Err != nil || r.Index != index {
		t.Fatalf("result = %+v (err %v), want index %d and no error", r, r.Err, index)
	}
	got, err := DecodeValue[T](r)
	if err != nil {
		t.Fatalf("DecodeValue: %v", err)
	}
	w := *(*T)(want)
	setMeta(&w, store.Meta{Version: index, CreatedAt: ts0, UpdatedAt: ts0})
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
func checkDeleted[T any, P objectPtr[T]](t *testing.T, e *env, r Result, key string, index uint64) {
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

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		<-tick.C
	}
}

// The sample objects of the store's tests that the rules of orders,
// workflows and leases moved from, valid as they are; t0 is their time.

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func sampleMachine(id string, macs ...string) *store.Machine {
	m := &store.Machine{
		ID:       id,
		Hostname: id + ".example.net",
		Arch:     "x86_64",
		BMC:      &store.BMC{Address: "10.0.0.9:623", Driver: "ipmi", Username: "admin", SealedPassword: []byte{1, 2, 3}},
		Disks:    []store.Disk{{Name: "sda", Size: 1 << 40, Model: "SSD", Serial: "S1"}},
		Tags:     []string{"rack-1"},
		State:    store.StateReady,
	}
	for i, mac := range macs {
		m.Interfaces = append(m.Interfaces, store.Interface{Name: "eth" + string(rune('0'+i)), MAC: mac, Boot: i == 0})
	}
	return m
}

func sampleSubnet(name string) *store.Subnet {
	return &store.Subnet{
		Name:         name,
		CIDR:         "198.18.0.0/24",
		Gateway:      "198.18.0.1",
		DNS:          []string{"198.18.0.2", "9.9.9.9"},
		Domain:       "example.net",
		Pools:        []store.Range{{Start: "198.18.0.100", End: "198.18.0.199"}},
		Reserved:     []store.Range{{Start: "198.18.0.1", End: "198.18.0.9"}},
		LeaseSeconds: 600,
		Discovery:    true,
	}
}

func sampleLease(ip string) *store.Lease {
	return &store.Lease{
		IP: ip, MAC: "aa:bb:cc:00:00:01", MachineID: "m1", Hostname: "m1",
		Subnet: "lab", State: store.LeaseActive, Starts: t0, Expires: t0.Add(time.Hour),
	}
}

func sampleImage(name string) *store.Image {
	return &store.Image{
		Name: name, Type: store.ImageOS, URL: "https://images.example.net/" + name + ".raw.zst",
		Format: "raw.zst", Size: 2 << 30, SHA256: strings.Repeat("ab", 32),
	}
}

func sampleTemplate(name string) *store.Template {
	return &store.Template{
		Name:        name,
		Description: "wipe, write, reboot",
		Actions: []store.Action{
			{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}, Timeout: store.Duration(90 * time.Second)},
			{Name: "write", Type: "image.write", Args: map[string]string{"device": "/dev/sda", "image": "{{ .image }}"}, Needs: []string{"wipe"}, Retries: 2},
			{Name: "reboot", Type: "reboot", Needs: []string{"write"}, OnFailure: "continue"},
		},
	}
}

func sampleWorkflow(id string) *store.Workflow {
	return &store.Workflow{ID: id, MachineID: "m1", Template: "install", Values: map[string]string{"image": "debian"}, Purpose: store.PurposeProvision}
}
