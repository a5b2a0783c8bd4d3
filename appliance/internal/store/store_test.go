package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/testwait"
)

var (
	t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	t1 = time.Date(2026, 3, 1, 11, 30, 0, 0, time.UTC)
)

// openDB opens a fresh store in a temporary directory and closes it when
// the test ends.
func openDB(t *testing.T) *store.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func update(t *testing.T, db *store.DB, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := db.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, db *store.DB, fn func(tx *store.Tx) error) {
	t.Helper()
	if err := db.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// errField returns the code and field of err's domain error, or "" and ""
// for nil. An error that is not a domain error fails the test.
func errField(t *testing.T, err error) (code, field string) {
	t.Helper()
	if err == nil {
		return "", ""
	}
	e, ok := errs.AsError(err)
	if !ok {
		t.Fatalf("error %v (%T) is not a *errs.Error", err, err)
	}
	return e.Code, e.Field
}

// Sample objects, one of each kind, valid as they are.

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

// storedWorkflow is sampleWorkflow as the site stores it: with the plan
// of template install bound into its state. Binding is the site's rule
// (site.createWorkflow); the store only keeps the result and its index.
func storedWorkflow(t *testing.T, id string) *store.Workflow {
	t.Helper()
	w := sampleWorkflow(id)
	bound, err := workflow.Bind(sampleTemplate("install").PlanActions(), w.Values)
	if err != nil {
		t.Fatalf("bind template install: %v", err)
	}
	plan, err := workflow.NewPlan(bound, actions.Required())
	if err != nil {
		t.Fatalf("plan of template install: %v", err)
	}
	st := workflow.NewState(plan, time.Time{})
	w.State = &st
	return w
}

func sampleMember(id string) *store.Member {
	return &store.Member{ID: id, RaftAddr: "10.0.0.1:7000", APIAddr: "https://10.0.0.1:8443"}
}

func sampleToken(id string) *store.Token {
	return &store.Token{ID: id, Name: "ci", Hash: strings.Repeat("0f", 32)}
}

// objPtr mirrors the store's generic constraint.
type objPtr[T any] interface {
	*T
	store.Object
}

// roundTrip puts objs (which must have distinct keys, given in key order)
// in one transaction and checks that Get, List and Count see exactly them,
// stamped with the write's index and time.
func roundTrip[T any, P objPtr[T]](t *testing.T, objs ...P) {
	t.Helper()
	roundTripIn(t, openDB(t), objs...)
}

// roundTripIn is roundTrip in a store prepared by the caller.
func roundTripIn[T any, P objPtr[T]](t *testing.T, db *store.DB, objs ...P) {
	t.Helper()
	var want []*T
	for _, o := range objs {
		if err := o.Validate(); err != nil {
			t.Fatalf("sample %s %q is invalid: %v", o.Kind(), o.Key(), err)
		}
		c := *(*T)(o)
		want = append(want, &c)
	}
	update(t, db, func(tx *store.Tx) error {
		for i, o := range objs {
			if err := tx.UnsafePut(o, store.Write{Index: uint64(10 + i), Time: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	// The stored copies carry the stamped metadata.
	for i, w := range want {
		setMeta(any(w), store.Meta{Version: uint64(10 + i), CreatedAt: t0, UpdatedAt: t0})
	}
	view(t, db, func(tx *store.Tx) error {
		for i, o := range objs {
			got, err := store.Get[T, P](tx, o.Key())
			if err != nil {
				t.Fatalf("Get(%q): %v", o.Key(), err)
			}
			if diff := cmp.Diff(want[i], got); diff != "" {
				t.Errorf("Get(%q) (-want +got):\n%s", o.Key(), diff)
			}
		}
		list, err := store.List[T, P](tx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if diff := cmp.Diff(want, list); diff != "" {
			t.Errorf("List (-want +got):\n%s", diff)
		}
		if got := store.Count[T, P](tx); got != len(objs) {
			t.Errorf("Count = %d, want %d", got, len(objs))
		}
		var zero P = new(T)
		_, err = store.Get[T, P](tx, "no-such-"+zero.Kind())
		if !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Get(missing) = %v, want errs.ErrNotFound", err)
		}
		return nil
	})
}

// setMeta sets the Meta of a store object.
func setMeta(o any, m store.Meta) { *o.(store.Object).ObjectMeta() = m }

func TestOpenFresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "site.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
	if got := db.AppliedIndex(); got != 0 {
		t.Errorf("AppliedIndex of a fresh store = %d, want 0", got)
	}
	view(t, db, func(tx *store.Tx) error {
		if got := tx.LastEventSeq(); got != 0 {
			t.Errorf("LastEventSeq = %d, want 0", got)
		}
		s, err := tx.Settings()
		if err != nil {
			t.Fatalf("Settings: %v", err)
		}
		if diff := cmp.Diff(store.DefaultSettings(), s); diff != "" {
			t.Errorf("Settings of a fresh store (-want +got):\n%s", diff)
		}
		return nil
	})
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeSetAppliedIndex(42) })
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := db.View(func(*store.Tx) error { return nil }); err == nil {
		t.Error("View on a closed store succeeded")
	}
	if err := db.Update(func(*store.Tx) error { return nil }); err == nil {
		t.Error("Update on a closed store succeeded")
	}

	// Reopening keeps what was written.
	db, err = store.Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	if got := db.AppliedIndex(); got != 42 {
		t.Errorf("AppliedIndex after reopen = %d, want 42", got)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Run("Machine", func(t *testing.T) {
		roundTrip(t, sampleMachine("m1", "aa:bb:cc:00:00:01"), sampleMachine("m2", "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:03"))
	})
	t.Run("Subnet", func(t *testing.T) { roundTrip(t, sampleSubnet("lab"), sampleSubnet("prod")) })
	t.Run("Lease", func(t *testing.T) {
		db := openDB(t)
		update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleSubnet("lab"), store.Write{Index: 1, Time: t0}) })
		other := sampleLease("198.18.0.101")
		other.MAC = "aa:bb:cc:00:00:02"
		roundTripIn(t, db, sampleLease("198.18.0.100"), other)
	})
	t.Run("Image", func(t *testing.T) { roundTrip(t, sampleImage("debian"), sampleImage("ubuntu")) })
	t.Run("Template", func(t *testing.T) { roundTrip(t, sampleTemplate("install"), sampleTemplate("reinstall")) })
	t.Run("Settings", func(t *testing.T) {
		roundTrip(t, &store.Settings{SiteName: "fra1", UnknownMachines: "exit"})
	})
	t.Run("Member", func(t *testing.T) { roundTrip(t, sampleMember("node-a"), sampleMember("node-b")) })
	t.Run("Token", func(t *testing.T) { roundTrip(t, sampleToken("tok1"), sampleToken("tok2")) })
}

func TestSettingsStored(t *testing.T) {
	db := openDB(t)
	update(t, db, func(tx *store.Tx) error {
		return tx.UnsafePut(&store.Settings{SiteName: "fra1", UnknownMachines: "exit"}, store.Write{Index: 3, Time: t0})
	})
	view(t, db, func(tx *store.Tx) error {
		s, err := tx.Settings()
		if err != nil {
			t.Fatalf("Settings: %v", err)
		}
		want := &store.Settings{Meta: store.Meta{Version: 3, CreatedAt: t0, UpdatedAt: t0}, SiteName: "fra1", UnknownMachines: "exit"}
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("Settings (-want +got):\n%s", diff)
		}
		return nil
	})
}

func TestDelete(t *testing.T) {
	db := openDB(t)
	update(t, db, func(tx *store.Tx) error {
		for _, o := range []store.Object{sampleSubnet("a"), sampleSubnet("b"), sampleImage("debian")} {
			if err := tx.UnsafePut(o, store.Write{Index: 1, Time: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, db, func(tx *store.Tx) error {
		if err := tx.UnsafeDelete(&store.Subnet{}, "a", 0); err != nil {
			t.Errorf("delete subnet a: %v", err)
		}
		if err := tx.UnsafeDelete(&store.Subnet{}, "a", 0); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("second delete of subnet a = %v, want errs.ErrNotFound", err)
		}
		// Keys are per kind: there is no image "b".
		if err := tx.UnsafeDelete(&store.Image{}, "b", 0); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("delete image b = %v, want errs.ErrNotFound", err)
		}
		return nil
	})
	view(t, db, func(tx *store.Tx) error {
		if _, err := store.Get[store.Subnet](tx, "a"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Get(a) after delete = %v, want errs.ErrNotFound", err)
		}
		if n := store.Count[store.Subnet](tx); n != 1 {
			t.Errorf("Count[Subnet] = %d, want 1", n)
		}
		if n := store.Count[store.Image](tx); n != 1 {
			t.Errorf("Count[Image] = %d, want 1", n)
		}
		return nil
	})
}

func TestUpdateErrorRollsBack(t *testing.T) {
	db := openDB(t)
	boom := errors.New("boom")
	err := db.Update(func(tx *store.Tx) error {
		if err := tx.UnsafePut(sampleSubnet("lab"), store.Write{Index: 1, Time: t0}); err != nil {
			return err
		}
		if err := tx.UnsafeSetAppliedIndex(1); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got := db.AppliedIndex(); got != 0 {
		t.Errorf("AppliedIndex = %d after a failed Update, want 0", got)
	}
	view(t, db, func(tx *store.Tx) error {
		if n := store.Count[store.Subnet](tx); n != 0 {
			t.Errorf("Count[Subnet] = %d after a failed Update, want 0", n)
		}
		return nil
	})
}

func TestChanged(t *testing.T) {
	db := openDB(t)
	ch := db.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before any write")
	default:
	}
	_ = db.Update(func(*store.Tx) error { return errors.New("no") })
	select {
	case <-ch:
		t.Fatal("Changed fired for a failed write")
	default:
	}
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeSetAppliedIndex(1) })
	select {
	case <-ch:
	default:
		t.Fatal("Changed did not fire after a committed write")
	}
	if db.Changed() == ch {
		t.Error("Changed returned the closed channel again")
	}
}

// TestChangedBesidesLeases: a write of leases alone (UpdateLeases) wakes
// the watchers of Changed, not those of ChangedBesidesLeases; any other
// write wakes both; a failed one neither.
func TestChangedBesidesLeases(t *testing.T) {
	db := openDB(t)
	all, besides := db.Changed(), db.ChangedBesidesLeases()
	_ = db.UpdateLeases(func(*store.Tx) error { return errors.New("no") })
	if testwait.Closed(all) || testwait.Closed(besides) {
		t.Fatal("a failed write woke watchers")
	}
	update := func(tx *store.Tx) error { return tx.UnsafeSetAppliedIndex(1) }
	if err := db.UpdateLeases(update); err != nil {
		t.Fatal(err)
	}
	if !testwait.Closed(all) || testwait.Closed(besides) {
		t.Errorf("UpdateLeases: Changed fired %v (want true), ChangedBesidesLeases %v (want false)", testwait.Closed(all), testwait.Closed(besides))
	}
	all = db.Changed()
	if err := db.Update(update); err != nil {
		t.Fatal(err)
	}
	if !testwait.Closed(all) || !testwait.Closed(besides) {
		t.Errorf("Update: Changed fired %v, ChangedBesidesLeases %v; want both", testwait.Closed(all), testwait.Closed(besides))
	}
	if db.ChangedBesidesLeases() == besides {
		t.Error("ChangedBesidesLeases returned the closed channel again")
	}
}

func TestMachineValidate(t *testing.T) {
	valid := func() *store.Machine { return sampleMachine("m1", "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02") }
	tests := map[string]struct {
		edit  func(m *store.Machine)
		field string // "" for valid
	}{
		"valid":               {edit: func(m *store.Machine) {}},
		"valid no bmc":        {edit: func(m *store.Machine) { m.BMC = nil }},
		"valid bmc hostname":  {edit: func(m *store.Machine) { m.BMC.Address = "bmc-m1.example.net" }},
		"valid aarch64":       {edit: func(m *store.Machine) { m.Arch = "aarch64" }},
		"valid redfish":       {edit: func(m *store.Machine) { m.BMC.Driver = "redfish" }},
		"valid interface ip":  {edit: func(m *store.Machine) { m.Interfaces[1].IP = "198.18.0.10" }},
		"missing id":          {edit: func(m *store.Machine) { m.ID = "" }, field: "id"},
		"uppercase id":        {edit: func(m *store.Machine) { m.ID = "M1" }, field: "id"},
		"id with slash":       {edit: func(m *store.Machine) { m.ID = "a/b" }, field: "id"},
		"id too long":         {edit: func(m *store.Machine) { m.ID = strings.Repeat("a", 64) }, field: "id"},
		"bad hostname":        {edit: func(m *store.Machine) { m.Hostname = "-bad-.example" }, field: "hostname"},
		"bad arch":            {edit: func(m *store.Machine) { m.Arch = "sparc" }, field: "arch"},
		"empty arch":          {edit: func(m *store.Machine) { m.Arch = "" }, field: "arch"},
		"bad state":           {edit: func(m *store.Machine) { m.State = "lost" }, field: "state"},
		"bad mac":             {edit: func(m *store.Machine) { m.Interfaces[0].MAC = "not-a-mac" }, field: "interfaces[0].mac"},
		"empty mac":           {edit: func(m *store.Machine) { m.Interfaces[1].MAC = "" }, field: "interfaces[1].mac"},
		"64-bit mac":          {edit: func(m *store.Machine) { m.Interfaces[0].MAC = "aa:bb:cc:dd:ee:ff:00:11" }, field: "interfaces[0].mac"},
		"duplicate mac":       {edit: func(m *store.Machine) { m.Interfaces[1].MAC = "AA-BB-CC-00-00-01" }, field: "interfaces[1].mac"},
		"bad interface ip":    {edit: func(m *store.Machine) { m.Interfaces[1].IP = "198.18.0" }, field: "interfaces[1].ip"},
		"ipv6 interface ip":   {edit: func(m *store.Machine) { m.Interfaces[0].IP = "2001:db8::1" }, field: "interfaces[0].ip"},
		"bmc without address": {edit: func(m *store.Machine) { m.BMC.Address = "" }, field: "bmc.address"},
		"bmc bad address":     {edit: func(m *store.Machine) { m.BMC.Address = "http://x/y" }, field: "bmc.address"},
		"bmc bad driver":      {edit: func(m *store.Machine) { m.BMC.Driver = "ilo" }, field: "bmc.driver"},
		"bmc certificate": {edit: func(m *store.Machine) {
			m.BMC.Certificate = &store.BMCCertificate{Accepted: "sha256:" + strings.Repeat("0a", 32)}
		}},
		"bmc certificate not stored form": {edit: func(m *store.Machine) {
			m.BMC.Certificate = &store.BMCCertificate{Presented: "SHA256:" + strings.Repeat("0A", 32)}
		}, field: "bmc.certificate.presented"},
		"bmc certificate not a fingerprint": {edit: func(m *store.Machine) {
			m.BMC.Certificate = &store.BMCCertificate{Accepted: "sha256:abc"}
		}, field: "bmc.certificate.accepted"},
		"disk without name": {edit: func(m *store.Machine) { m.Disks = append(m.Disks, store.Disk{Size: 1}) }, field: "disks[1].name"},
		"blank tag":         {edit: func(m *store.Machine) { m.Tags = []string{"ok", " "} }, field: "tags[1]"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := valid()
			tc.edit(m)
			err := m.Validate()
			code, field := errField(t, err)
			if diff := cmp.Diff(tc.field, field); diff != "" {
				t.Errorf("Validate() = %v: field (-want +got):\n%s", err, diff)
			}
			if tc.field != "" {
				if code != errs.CodeInvalid || !errors.Is(err, errs.ErrInvalid) {
					t.Errorf("Validate() = %v (code %q), want an errs.ErrInvalid", err, code)
				}
				if !strings.HasPrefix(err.Error(), tc.field+": ") {
					t.Errorf("Error() = %q, want it to start with the field", err.Error())
				}
			}
		})
	}
}

// TestNormalizeFingerprint: the stored form, and openssl's, are read; anything
// that is not 32 bytes of hex is refused, naming what was given.
func TestNormalizeFingerprint(t *testing.T) {
	want := "sha256:" + strings.Repeat("ab", 31) + "0f"
	colons := strings.ToUpper(strings.TrimSuffix(strings.Repeat("AB:", 31), ":")) + ":0F"
	for _, in := range []string{want, " " + want + "\n", "SHA256:" + strings.Repeat("AB", 31) + "0F",
		strings.Repeat("ab", 31) + "0f", colons, "sha256 Fingerprint=" + colons, "SHA256 Fingerprint=" + colons} {
		got, err := store.NormalizeFingerprint(in)
		if err != nil || got != want {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "sha256:", "sha1:" + strings.Repeat("ab", 20), "sha256:" + strings.Repeat("ab", 31),
		"sha256:" + strings.Repeat("ab", 32) + "00", "sha256:" + strings.Repeat("zz", 32)} {
		if got, err := store.NormalizeFingerprint(in); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v; want an error naming it", in, got, err)
		}
	}
}

func TestMachineNormalize(t *testing.T) {
	m := &store.Machine{
		ID:         "m1",
		Interfaces: []store.Interface{{MAC: "AA-BB-CC-00-00-01"}, {MAC: " aabb.cc00.0002 "}, {MAC: "junk"}},
		BMC:        &store.BMC{Address: "10.0.0.9"},
	}
	m.Normalize()
	want := &store.Machine{
		ID:         "m1",
		Arch:       "x86_64",
		State:      store.StateReady,
		Interfaces: []store.Interface{{MAC: "aa:bb:cc:00:00:01"}, {MAC: "aa:bb:cc:00:00:02"}, {MAC: "junk"}},
		BMC:        &store.BMC{Address: "10.0.0.9", Driver: "ipmi"},
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Errorf("Normalize (-want +got):\n%s", diff)
	}
}

func TestMachineView(t *testing.T) {
	m := sampleMachine("m1", "aa:bb:cc:00:00:01")
	m.BMC.Password = "hunter2"
	v := m.View()
	if v.BMC.Password != "" || v.BMC.SealedPassword != nil || !v.BMC.PasswordSet {
		t.Errorf("View().BMC = %+v, want no secrets and PasswordSet", *v.BMC)
	}
	if m.BMC.Password != "hunter2" || len(m.BMC.SealedPassword) == 0 {
		t.Error("View changed the original machine's BMC")
	}
	v.Interfaces[0].MAC = "changed"
	if m.Interfaces[0].MAC == "changed" {
		t.Error("View shares the interfaces slice with the original")
	}
	m.BMC.Password, m.BMC.SealedPassword = "", nil
	if m.View().BMC.PasswordSet {
		t.Error("PasswordSet with no password stored")
	}
}

func TestSubnetValidate(t *testing.T) {
	tests := map[string]struct {
		edit  func(s *store.Subnet)
		field string
	}{
		"valid":                  {edit: func(s *store.Subnet) {}},
		"valid minimal":          {edit: func(s *store.Subnet) { *s = store.Subnet{Name: "x", CIDR: "10.0.0.0/8"} }},
		"valid unmasked cidr":    {edit: func(s *store.Subnet) { s.CIDR = "198.18.0.77/24" }},
		"valid /30":              {edit: func(s *store.Subnet) { *s = store.Subnet{Name: "p2p", CIDR: "10.0.0.0/30"} }},
		"missing name":           {edit: func(s *store.Subnet) { s.Name = "" }, field: "name"},
		"bad name":               {edit: func(s *store.Subnet) { s.Name = "Lab Net" }, field: "name"},
		"missing cidr":           {edit: func(s *store.Subnet) { s.CIDR = "" }, field: "cidr"},
		"cidr without bits":      {edit: func(s *store.Subnet) { s.CIDR = "198.18.0.0" }, field: "cidr"},
		"ipv6 cidr":              {edit: func(s *store.Subnet) { s.CIDR = "2001:db8::/64" }, field: "cidr"},
		"cidr /31":               {edit: func(s *store.Subnet) { s.CIDR = "198.18.0.0/31" }, field: "cidr"},
		"cidr /32":               {edit: func(s *store.Subnet) { s.CIDR = "198.18.0.1/32" }, field: "cidr"},
		"gateway outside":        {edit: func(s *store.Subnet) { s.Gateway = "198.19.0.1" }, field: "gateway"},
		"gateway not an address": {edit: func(s *store.Subnet) { s.Gateway = "router" }, field: "gateway"},
		"gateway ipv6":           {edit: func(s *store.Subnet) { s.Gateway = "::1" }, field: "gateway"},
		"empty dns":              {edit: func(s *store.Subnet) { s.DNS = []string{"1.1.1.1", ""} }, field: "dns[1]"},
		"bad dns":                {edit: func(s *store.Subnet) { s.DNS = []string{"dns.example"} }, field: "dns[0]"},
		"bad domain":             {edit: func(s *store.Subnet) { s.Domain = "exa mple" }, field: "domain"},
		"pool start outside":     {edit: func(s *store.Subnet) { s.Pools[0].Start = "10.0.0.1" }, field: "pools[0].start"},
		"pool end outside":       {edit: func(s *store.Subnet) { s.Pools[0].End = "198.18.1.1" }, field: "pools[0].end"},
		"pool end missing":       {edit: func(s *store.Subnet) { s.Pools[0].End = "" }, field: "pools[0].end"},
		"pool reversed": {edit: func(s *store.Subnet) {
			s.Pools = append(s.Pools, store.Range{Start: "198.18.0.250", End: "198.18.0.240"})
		}, field: "pools[1]"},
		"reserved outside": {edit: func(s *store.Subnet) {
			s.Reserved = append(s.Reserved, store.Range{Start: "198.18.0.10", End: "198.18.3.0"})
		}, field: "reserved[1].end"},
		"reserved reversed": {edit: func(s *store.Subnet) { s.Reserved[0] = store.Range{Start: "198.18.0.9", End: "198.18.0.1"} }, field: "reserved[0]"},
		"boot pxe":          {edit: func(s *store.Subnet) { s.Boot = store.BootPXE }},
		"boot vmedia":       {edit: func(s *store.Subnet) { s.Boot = store.BootVirtualMedia }},
		"boot unknown":      {edit: func(s *store.Subnet) { s.Boot = "cd" }, field: "boot"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s := sampleSubnet("lab")
			tc.edit(s)
			err := s.Validate()
			_, field := errField(t, err)
			if diff := cmp.Diff(tc.field, field); diff != "" {
				t.Errorf("Validate() = %v: field (-want +got):\n%s", err, diff)
			}
			if tc.field != "" && !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("Validate() = %v, want errs.ErrInvalid", err)
			}
		})
	}

	s := sampleSubnet("lab")
	s.CIDR = "198.18.0.77/24"
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Prefix().String(), "198.18.0.0/24"; got != want {
		t.Errorf("Prefix() = %s, want %s", got, want)
	}
}

func TestImageValidate(t *testing.T) {
	installer := func(i *store.Image) {
		*i = store.Image{Name: "discovery", Type: store.ImageInstaller, Kernel: "vmlinuz", Initrd: "initrd.img", Cmdline: "console=ttyS0"}
	}
	tests := map[string]struct {
		edit  func(i *store.Image)
		field string
	}{
		"valid url":              {edit: func(i *store.Image) {}},
		"valid http url":         {edit: func(i *store.Image) { i.URL = "http://10.0.0.1/x.qcow2"; i.Format = "qcow2" }},
		"valid file":             {edit: func(i *store.Image) { i.URL = ""; i.File = "debian.raw" }},
		"valid no sha":           {edit: func(i *store.Image) { i.SHA256 = "" }},
		"valid installer":        {edit: installer},
		"missing name":           {edit: func(i *store.Image) { i.Name = "" }, field: "name"},
		"bad type":               {edit: func(i *store.Image) { i.Type = "iso" }, field: "type"},
		"empty type":             {edit: func(i *store.Image) { i.Type = "" }, field: "type"},
		"short sha256":           {edit: func(i *store.Image) { i.SHA256 = "abcd" }, field: "sha256"},
		"non-hex sha256":         {edit: func(i *store.Image) { i.SHA256 = strings.Repeat("zz", 32) }, field: "sha256"},
		"url and file":           {edit: func(i *store.Image) { i.File = "x.raw" }, field: "url"},
		"sha256 alone":           {edit: func(i *store.Image) { i.URL = "" }},
		"no url, file or sha256": {edit: func(i *store.Image) { i.URL, i.SHA256 = "", "" }, field: "sha256"},
		"ftp url":                {edit: func(i *store.Image) { i.URL = "ftp://example.net/x.raw" }, field: "url"},
		"url without host":       {edit: func(i *store.Image) { i.URL = "https:///x.raw" }, field: "url"},
		"bad format":             {edit: func(i *store.Image) { i.Format = "vmdk" }, field: "format"},
		"missing format":         {edit: func(i *store.Image) { i.Format = "" }, field: "format"},
		"installer no kernel":    {edit: func(i *store.Image) { installer(i); i.Kernel = "" }, field: "kernel"},
		"installer no initrd":    {edit: func(i *store.Image) { installer(i); i.Initrd = "" }, field: "initrd"},
		"installer bad checksum": {edit: func(i *store.Image) { installer(i); i.SHA256 = "00" }, field: "sha256"},
		"installer artifacts": {edit: func(i *store.Image) {
			installer(i)
			i.Kernel, i.Initrd = "sha256:"+strings.Repeat("ab", 32), "SHA256:"+strings.Repeat("CD", 32)
		}},
		"installer bad kernel ref": {edit: func(i *store.Image) { installer(i); i.Kernel = "sha256:abc" }, field: "kernel"},
		"installer bad initrd ref": {edit: func(i *store.Image) { installer(i); i.Initrd = "Sha256:" + strings.Repeat("zz", 32) }, field: "initrd"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i := sampleImage("debian")
			tc.edit(i)
			err := i.Validate()
			_, field := errField(t, err)
			if diff := cmp.Diff(tc.field, field); diff != "" {
				t.Errorf("Validate() = %v: field (-want +got):\n%s", err, diff)
			}
		})
	}

	i := &store.Image{Name: "x"}
	i.Normalize()
	if i.Type != store.ImageOS {
		t.Errorf("Normalize left Type %q, want %q", i.Type, store.ImageOS)
	}
}

func TestTemplateValidate(t *testing.T) {
	act := func(name string, needs ...string) store.Action {
		return store.Action{Name: name, Type: "exec", Args: map[string]string{"command": "true"}, Needs: needs}
	}
	tests := map[string]struct {
		actions []store.Action
		name    string // template name; "install" if empty
		field   string
		message string // a substring of the message, if set
	}{
		"valid chain":    {actions: []store.Action{act("a"), act("b", "a"), act("c", "b")}},
		"valid diamond":  {actions: []store.Action{act("a"), act("b", "a"), act("c", "a"), act("d", "b", "c")}},
		"valid forward":  {actions: []store.Action{act("d", "b", "c"), act("c", "a"), act("b", "a"), act("a")}},
		"valid parallel": {actions: []store.Action{act("a"), act("b")}},
		"bad name":       {name: "Install!", actions: []store.Action{act("a")}, field: "name"},
		"no actions":     {actions: nil, field: "actions"},
		"action without name": {
			actions: []store.Action{act("a"), act("")}, field: "actions[1].name",
		},
		"action with bad name": {
			actions: []store.Action{act("Wipe Disk")}, field: "actions[0].name",
		},
		"duplicate names": {
			actions: []store.Action{act("a"), act("b", "a"), act("a")}, field: "actions[2].name", message: "used twice",
		},
		"missing type": {
			actions: []store.Action{{Name: "a"}}, field: "actions[0].type",
		},
		"negative retries": {
			actions: []store.Action{act("a"), {Name: "b", Type: "x", Retries: -1}}, field: "actions[1].retries",
		},
		"too many retries": {
			actions: []store.Action{{Name: "a", Type: "x", Retries: 101}}, field: "actions[0].retries",
		},
		"negative timeout": {
			actions: []store.Action{{Name: "a", Type: "x", Timeout: -1}}, field: "actions[0].timeout",
		},
		"bad on_failure": {
			actions: []store.Action{{Name: "a", Type: "x", OnFailure: "ignore"}}, field: "actions[0].on_failure",
		},
		"unknown need": {
			actions: []store.Action{act("a"), act("b", "a", "nope")}, field: "actions[1].needs[1]", message: `"nope"`,
		},
		"need on itself": {
			actions: []store.Action{act("a"), act("b", "b")}, field: "actions[1].needs[0]", message: "cycle",
		},
		"two-cycle": {
			actions: []store.Action{act("x"), act("a", "b"), act("b", "a")}, field: "actions[2].needs[0]", message: "cycle",
		},
		"three-cycle through first": {
			actions: []store.Action{act("a", "c"), act("b", "a"), act("c", "b")}, field: "actions[1].needs[0]", message: "cycle",
		},
		"cycle behind a valid prefix": {
			actions: []store.Action{act("a"), act("b", "a"), act("c", "b", "e"), act("d", "c"), act("e", "d")},
			field:   "actions[3].needs[0]", message: "cycle",
		},
		"unknown type": {
			actions: []store.Action{act("a"), {Name: "b", Type: "shell"}}, field: "actions[1].type", message: `unknown action type "shell"`,
		},
		"missing argument": {
			actions: []store.Action{{Name: "w", Type: "image.write", Args: map[string]string{"image": "x"}}},
			field:   "actions[0].args.device", message: "required",
		},
		"unknown argument": {
			actions: []store.Action{{Name: "w", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda", "disk": "/dev/sda"}}},
			field:   "actions[0].args.disk", message: `no argument "disk"`,
		},
		"reboot not last": {
			actions: []store.Action{act("a"), {Name: "r", Type: "reboot"}, act("b", "r")}, field: "actions[1].needs", message: "must run last",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tpl := &store.Template{Name: "install", Actions: tc.actions}
			if tc.name != "" {
				tpl.Name = tc.name
			}
			err := tpl.Validate()
			_, field := errField(t, err)
			if diff := cmp.Diff(tc.field, field); diff != "" {
				t.Errorf("Validate() = %v: field (-want +got):\n%s", err, diff)
			}
			if tc.message != "" && (err == nil || !strings.Contains(err.Error(), tc.message)) {
				t.Errorf("Validate() = %v, want a message containing %q", err, tc.message)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	d := store.Duration(90 * time.Second)
	b, err := d.MarshalJSON()
	if err != nil || string(b) != `"1m30s"` {
		t.Fatalf("MarshalJSON = %s, %v; want \"1m30s\"", b, err)
	}
	var got store.Duration
	if err := got.UnmarshalJSON([]byte(`"5m"`)); err != nil || got != store.Duration(5*time.Minute) {
		t.Errorf("UnmarshalJSON(\"5m\") = %v, %v", time.Duration(got), err)
	}
	if err := got.UnmarshalJSON([]byte(`"soon"`)); err == nil {
		t.Error("UnmarshalJSON(\"soon\") succeeded")
	}
}

func TestOtherValidate(t *testing.T) {
	tests := map[string]struct {
		obj   interface{ Validate() error }
		field string
	}{
		"lease valid":          {obj: sampleLease("198.18.0.100")},
		"lease bad ip":         {obj: func() *store.Lease { l := sampleLease("198.18.0"); return l }(), field: "ip"},
		"lease bad mac":        {obj: func() *store.Lease { l := sampleLease("198.18.0.1"); l.MAC = "x"; return l }(), field: "mac"},
		"lease bad subnet":     {obj: func() *store.Lease { l := sampleLease("198.18.0.1"); l.Subnet = ""; return l }(), field: "subnet"},
		"lease bad state":      {obj: func() *store.Lease { l := sampleLease("198.18.0.1"); l.State = "bound"; return l }(), field: "state"},
		"lease expires early":  {obj: func() *store.Lease { l := sampleLease("198.18.0.1"); l.Expires = t0.Add(-1); return l }(), field: "expires"},
		"workflow valid":       {obj: sampleWorkflow("wf1")},
		"workflow bad id":      {obj: func() *store.Workflow { w := sampleWorkflow("WF"); return w }(), field: "id"},
		"workflow no machine":  {obj: func() *store.Workflow { w := sampleWorkflow("wf"); w.MachineID = ""; return w }(), field: "machine_id"},
		"workflow no template": {obj: func() *store.Workflow { w := sampleWorkflow("wf"); w.Template = ""; return w }(), field: "template"},
		"workflow bad purpose": {obj: func() *store.Workflow { w := sampleWorkflow("wf"); w.Purpose = "x"; return w }(), field: "purpose"},
		"workflow traceparent": {obj: func() *store.Workflow { w := sampleWorkflow("wf"); w.Traceparent = goodTP; return w }()},
		"workflow bad traceparent": {obj: func() *store.Workflow {
			w := sampleWorkflow("wf")
			w.Traceparent = "00-abc-def-01"
			return w
		}(), field: "traceparent"},
		"order traceparent": {obj: func() *store.Order { o := traceOrder(); o.Traceparent = goodTP; return o }()},
		"order bad traceparent": {obj: func() *store.Order {
			o := traceOrder()
			o.Traceparent = "01-" + goodTP[3:]
			return o
		}(), field: "traceparent"},
		"order zero trace id": {obj: func() *store.Order {
			o := traceOrder()
			o.Traceparent = "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"
			return o
		}(), field: "traceparent"},
		"order zero span id": {obj: func() *store.Order {
			o := traceOrder()
			o.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-" + strings.Repeat("0", 16) + "-01"
			return o
		}(), field: "traceparent"},
		"job traceparent": {obj: &store.Job{ID: "j", MachineID: "m", Action: store.JobPowerOn, State: store.JobPending, Traceparent: goodTP}},
		"job bad traceparent": {obj: &store.Job{ID: "j", MachineID: "m", Action: store.JobPowerOn, State: store.JobPending,
			Traceparent: strings.ToUpper(goodTP)}, field: "traceparent"},
		"settings valid":       {obj: store.DefaultSettings()},
		"settings bad name":    {obj: &store.Settings{SiteName: "", UnknownMachines: "exit"}, field: "site_name"},
		"settings bad unknown": {obj: &store.Settings{SiteName: "s", UnknownMachines: "boot"}, field: "unknown_machines"},
		"member valid":         {obj: sampleMember("n1")},
		"member bad id":        {obj: &store.Member{RaftAddr: "a", APIAddr: "b"}, field: "id"},
		"member no raft addr":  {obj: &store.Member{ID: "n1", APIAddr: "b"}, field: "raft_addr"},
		"member no api addr":   {obj: &store.Member{ID: "n1", RaftAddr: "a"}, field: "api_addr"},
		"token valid":          {obj: sampleToken("t1")},
		"token bad id":         {obj: &store.Token{ID: "", Hash: strings.Repeat("0f", 32)}, field: "id"},
		"token bad hash":       {obj: &store.Token{ID: "t1", Hash: "secret"}, field: "hash"},
		"event valid":          {obj: &store.Event{Kind: "boot", Message: "ok"}},
		"event no kind":        {obj: &store.Event{Message: "x"}, field: "kind"},
		"event long message":   {obj: &store.Event{Kind: "k", Message: strings.Repeat("x", 4097)}, field: "message"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.obj.Validate()
			_, field := errField(t, err)
			if diff := cmp.Diff(tc.field, field); diff != "" {
				t.Errorf("Validate() = %v: field (-want +got):\n%s", err, diff)
			}
		})
	}

	w := &store.Workflow{}
	w.Normalize()
	if w.Purpose != store.PurposeProvision {
		t.Errorf("Workflow.Normalize left Purpose %q", w.Purpose)
	}
}

// goodTP is a W3C traceparent (the specification's example).
const goodTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func traceOrder() *store.Order {
	return &store.Order{ID: "o1", Action: store.OrderProvision, MachineID: "m1", Image: "ubuntu"}
}

func TestErrors(t *testing.T) {
	tests := map[string]struct {
		err         *errs.Error
		is          error
		isNot       []error
		wantMessage string
	}{
		"invalid": {
			err: errs.Invalid("cidr", "bad %d", 1), is: errs.ErrInvalid,
			isNot: []error{errs.ErrNotFound, errs.ErrConflict, store.ErrCorrupt}, wantMessage: "cidr: bad 1",
		},
		"not found": {
			err: errs.NotFound("machine", "m1"), is: errs.ErrNotFound,
			isNot: []error{errs.ErrInvalid, errs.ErrConflict}, wantMessage: `machine "m1" not found`,
		},
		"conflict": {
			err: errs.Conflict("taken by %s", "x"), is: errs.ErrConflict,
			isNot: []error{errs.ErrInvalid, errs.ErrNotFound}, wantMessage: "taken by x",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var err error = tc.err
			wrapped := errors.Join(errors.New("context"), err)
			if !errors.Is(wrapped, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			for _, n := range tc.isNot {
				if errors.Is(err, n) {
					t.Errorf("errors.Is(%v, %v) = true", err, n)
				}
			}
			if got := err.Error(); got != tc.wantMessage {
				t.Errorf("Error() = %q, want %q", got, tc.wantMessage)
			}
			got, ok := errs.AsError(wrapped)
			if !ok || got != tc.err {
				t.Errorf("AsError = %v, %v", got, ok)
			}
		})
	}
	if _, ok := errs.AsError(errors.New("plain")); ok {
		t.Error("AsError found a domain error in a plain error")
	}
}

// machineIDByMAC returns the ID of the machine that owns mac, or "" if
// none does.
func machineIDByMAC(t *testing.T, db *store.DB, mac string) string {
	t.Helper()
	var id string
	view(t, db, func(tx *store.Tx) error {
		m, err := tx.MachineByMAC(mac)
		switch {
		case errors.Is(err, errs.ErrNotFound):
		case err != nil:
			t.Fatalf("MachineByMAC(%q): %v", mac, err)
		default:
			id = m.ID
		}
		return nil
	})
	return id
}

func putMachine(t *testing.T, db *store.DB, m *store.Machine, w store.Write) error {
	t.Helper()
	m.Normalize()
	if err := m.Validate(); err != nil {
		t.Fatalf("machine %q is invalid: %v", m.ID, err)
	}
	var perr error
	// The put's error is not returned from Update so that the transaction
	// commits: a refused put must have changed nothing by itself.
	update(t, db, func(tx *store.Tx) error {
		perr = tx.UnsafePutMachine(m, w)
		return nil
	})
	return perr
}

func TestMACIndex(t *testing.T) {
	db := openDB(t)
	w := store.Write{Index: 1, Time: t0}
	if err := putMachine(t, db, sampleMachine("m1", "AA:BB:CC:00:00:01", "aa-bb-cc-00-00-02"), w); err != nil {
		t.Fatalf("put m1: %v", err)
	}

	t.Run("lookup in any form", func(t *testing.T) {
		for _, mac := range []string{
			"aa:bb:cc:00:00:01", "AA:BB:CC:00:00:01", "aa-bb-cc-00-00-01", "aabb.cc00.0001", " aa:bb:cc:00:00:01\n",
			"aa:bb:cc:00:00:02", "AA-BB-CC-00-00-02",
		} {
			if got := machineIDByMAC(t, db, mac); got != "m1" {
				t.Errorf("MachineByMAC(%q) = %q, want m1", mac, got)
			}
		}
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:03"); got != "" {
			t.Errorf("MachineByMAC(unknown) = %q, want none", got)
		}
		view(t, db, func(tx *store.Tx) error {
			if _, err := tx.MachineByMAC("zz:zz"); !errors.Is(err, errs.ErrInvalid) {
				t.Errorf("MachineByMAC(malformed) = %v, want errs.ErrInvalid", err)
			}
			return nil
		})
	})

	t.Run("second claimant conflicts", func(t *testing.T) {
		before := dumpMachines(t, db)
		for name, m := range map[string]*store.Machine{
			"same mac":                      sampleMachine("m2", "aa:bb:cc:00:00:02"),
			"same mac in another form":      sampleMachine("m2", "AA-BB-CC-00-00-01"),
			"new mac then taken mac":        sampleMachine("m2", "aa:bb:cc:00:00:09", "aa:bb:cc:00:00:01"),
			"taken mac on existing machine": sampleMachine("m1x", "aa:bb:cc:00:00:01"),
		} {
			err := putMachine(t, db, m, store.Write{Index: 2, Time: t1})
			if !errors.Is(err, errs.ErrConflict) {
				t.Errorf("%s: put = %v, want errs.ErrConflict", name, err)
			}
			if err != nil && !strings.Contains(err.Error(), `"m1"`) {
				t.Errorf("%s: error %q does not name the owner", name, err)
			}
		}
		if diff := cmp.Diff(before, dumpMachines(t, db)); diff != "" {
			t.Errorf("a refused put changed the store (-before +after):\n%s", diff)
		}
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:09"); got != "" {
			t.Errorf("refused put indexed aa:bb:cc:00:00:09 for %q", got)
		}
	})

	t.Run("version conflict leaves index alone", func(t *testing.T) {
		err := putMachine(t, db, sampleMachine("m1", "aa:bb:cc:00:00:07"), store.Write{Expect: 99, Index: 3, Time: t1})
		if !errors.Is(err, errs.ErrConflict) {
			t.Fatalf("put with wrong Expect = %v, want errs.ErrConflict", err)
		}
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:07"); got != "" {
			t.Errorf("refused put indexed aa:bb:cc:00:00:07 for %q", got)
		}
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:01"); got != "m1" {
			t.Errorf("refused put dropped aa:bb:cc:00:00:01 (owner %q)", got)
		}
	})

	t.Run("re-put with the same MACs", func(t *testing.T) {
		if err := putMachine(t, db, sampleMachine("m1", "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"), store.Write{Index: 4, Time: t1}); err != nil {
			t.Fatalf("re-put m1: %v", err)
		}
		for _, mac := range []string{"aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02"} {
			if got := machineIDByMAC(t, db, mac); got != "m1" {
				t.Errorf("MachineByMAC(%s) = %q, want m1", mac, got)
			}
		}
	})

	t.Run("changing MACs moves the index", func(t *testing.T) {
		if err := putMachine(t, db, sampleMachine("m1", "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:04"), store.Write{Expect: 4, Index: 5, Time: t1}); err != nil {
			t.Fatalf("change m1's MACs: %v", err)
		}
		want := map[string]string{"aa:bb:cc:00:00:01": "", "aa:bb:cc:00:00:02": "m1", "aa:bb:cc:00:00:04": "m1"}
		for mac, id := range want {
			if got := machineIDByMAC(t, db, mac); got != id {
				t.Errorf("MachineByMAC(%s) = %q, want %q", mac, got, id)
			}
		}
		// The MAC m1 gave up is free for another machine.
		if err := putMachine(t, db, sampleMachine("m2", "aa:bb:cc:00:00:01"), store.Write{Index: 6, Time: t1}); err != nil {
			t.Fatalf("m2 takes the released MAC: %v", err)
		}
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:01"); got != "m2" {
			t.Errorf("MachineByMAC(aa:bb:cc:00:00:01) = %q, want m2", got)
		}
		// A machine with no interfaces holds no MACs.
		if err := putMachine(t, db, sampleMachine("m3"), store.Write{Index: 7, Time: t1}); err != nil {
			t.Fatalf("put m3: %v", err)
		}
		if got := macIndexSize(t, db); got != 3 {
			t.Errorf("MAC index has %d entries, want 3", got)
		}
	})

	t.Run("delete removes entries", func(t *testing.T) {
		update(t, db, func(tx *store.Tx) error {
			if err := tx.UnsafeDeleteMachine("m1", 4); !errors.Is(err, errs.ErrConflict) {
				t.Errorf("delete m1 with stale Expect = %v, want errs.ErrConflict", err)
			}
			return nil
		})
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:04"); got != "m1" {
			t.Fatalf("refused delete dropped m1's MAC (owner %q)", got)
		}
		update(t, db, func(tx *store.Tx) error { return tx.UnsafeDeleteMachine("m1", 5) })
		for _, mac := range []string{"aa:bb:cc:00:00:02", "aa:bb:cc:00:00:04"} {
			if got := machineIDByMAC(t, db, mac); got != "" {
				t.Errorf("MachineByMAC(%s) = %q after deleting m1", mac, got)
			}
		}
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:01"); got != "m2" {
			t.Errorf("deleting m1 dropped m2's MAC (owner %q)", got)
		}
		// The generic delete keeps the index too.
		update(t, db, func(tx *store.Tx) error { return tx.UnsafeDelete(&store.Machine{}, "m2", 0) })
		if got := machineIDByMAC(t, db, "aa:bb:cc:00:00:01"); got != "" {
			t.Errorf("MachineByMAC after deleting m2 = %q", got)
		}
		if got := macIndexSize(t, db); got != 0 {
			t.Errorf("MAC index has %d entries after deleting every machine with MACs", got)
		}
		// The deleted machines' MACs are free: no stale index entry
		// claims them.
		if err := putMachine(t, db, sampleMachine("m5", "aa:bb:cc:00:00:01", "aa:bb:cc:00:00:02", "aa:bb:cc:00:00:04"), store.Write{Index: 8, Time: t1}); err != nil {
			t.Fatalf("a new machine cannot take the deleted machines' MACs: %v", err)
		}
		update(t, db, func(tx *store.Tx) error { return tx.UnsafeDeleteMachine("m5", 0) })
		update(t, db, func(tx *store.Tx) error {
			if err := tx.UnsafeDeleteMachine("m1", 0); !errors.Is(err, errs.ErrNotFound) {
				t.Errorf("deleting m1 again = %v, want errs.ErrNotFound", err)
			}
			return nil
		})
	})

	t.Run("generic put keeps the index", func(t *testing.T) {
		m := sampleMachine("m9", "aa:bb:cc:00:00:99")
		update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(m, store.Write{Index: 9, Time: t1}) })
		if got := machineIDByMAC(t, db, "AA:BB:CC:00:00:99"); got != "m9" {
			t.Errorf("MachineByMAC after UnsafePut = %q, want m9", got)
		}
		err := db.Update(func(tx *store.Tx) error {
			return tx.UnsafePut(sampleMachine("m10", "aa:bb:cc:00:00:99"), store.Write{Index: 10, Time: t1})
		})
		if !errors.Is(err, errs.ErrConflict) {
			t.Errorf("UnsafePut of a second claimant = %v, want errs.ErrConflict", err)
		}
	})
}

// macIndexSize counts MAC index entries by looking up every MAC of every
// machine and the MACs the tests use.
func macIndexSize(t *testing.T, db *store.DB) int {
	t.Helper()
	n := 0
	for i := 0; i < 256; i++ {
		mac := "aa:bb:cc:00:00:" + hex2(i)
		if machineIDByMAC(t, db, mac) != "" {
			n++
		}
	}
	return n
}

func hex2(i int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[i>>4], digits[i&15]})
}

func dumpMachines(t *testing.T, db *store.DB) []*store.Machine {
	t.Helper()
	var ms []*store.Machine
	view(t, db, func(tx *store.Tx) error {
		var err error
		ms, err = store.List[store.Machine](tx)
		return err
	})
	return ms
}

func TestVersionChecks(t *testing.T) {
	db := openDB(t)
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleSubnet("lab"), store.Write{Index: 5, Time: t0}) })
	get := func() *store.Subnet {
		var s *store.Subnet
		view(t, db, func(tx *store.Tx) error {
			var err error
			s, err = store.Get[store.Subnet](tx, "lab")
			return err
		})
		return s
	}
	orig := get()
	if orig.Version != 5 || !orig.CreatedAt.Equal(t0) || !orig.UpdatedAt.Equal(t0) {
		t.Fatalf("stored meta = %+v, want version 5 at t0", orig.Meta)
	}

	tryPut := func(s *store.Subnet, w store.Write) error {
		var perr error
		update(t, db, func(tx *store.Tx) error { perr = tx.UnsafePut(s, w); return nil })
		return perr
	}

	changed := sampleSubnet("lab")
	changed.Gateway = "198.18.0.254"
	for _, expect := range []uint64{1, 4, 6} {
		err := tryPut(changed, store.Write{Expect: expect, Index: 8, Time: t1})
		if !errors.Is(err, errs.ErrConflict) {
			t.Errorf("put with Expect %d = %v, want errs.ErrConflict", expect, err)
		}
		if diff := cmp.Diff(orig, get()); diff != "" {
			t.Errorf("refused put with Expect %d changed the subnet (-want +got):\n%s", expect, diff)
		}
	}

	// Expect on a key that does not exist is a conflict too.
	if err := tryPut(sampleSubnet("new"), store.Write{Expect: 5, Index: 8, Time: t1}); !errors.Is(err, errs.ErrConflict) {
		t.Errorf("put of a new object with Expect = %v, want errs.ErrConflict", err)
	}
	view(t, db, func(tx *store.Tx) error {
		if n := store.Count[store.Subnet](tx); n != 1 {
			t.Errorf("Count = %d after refused create, want 1", n)
		}
		return nil
	})

	// The right version wins, keeps CreatedAt and bumps Version.
	if err := tryPut(changed, store.Write{Expect: 5, Index: 8, Time: t1}); err != nil {
		t.Fatalf("put with Expect 5: %v", err)
	}
	got := get()
	want := sampleSubnet("lab")
	want.Gateway = "198.18.0.254"
	want.Meta = store.Meta{Version: 8, CreatedAt: t0, UpdatedAt: t1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after put with Expect 5 (-want +got):\n%s", diff)
	}

	// Expect 0 overwrites unconditionally.
	if err := tryPut(sampleSubnet("lab"), store.Write{Index: 9, Time: t1}); err != nil {
		t.Fatalf("put with Expect 0: %v", err)
	}
	if v := get().Version; v != 9 {
		t.Errorf("Version after unconditional put = %d, want 9", v)
	}

	// Deletes check versions the same way.
	update(t, db, func(tx *store.Tx) error {
		if err := tx.UnsafeDelete(&store.Subnet{}, "lab", 8); !errors.Is(err, errs.ErrConflict) {
			t.Errorf("delete with Expect 8 = %v, want errs.ErrConflict", err)
		}
		return nil
	})
	if v := get().Version; v != 9 {
		t.Fatalf("refused delete changed the subnet (version %d)", v)
	}
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeDelete(&store.Subnet{}, "lab", 9) })
	view(t, db, func(tx *store.Tx) error {
		if _, err := store.Get[store.Subnet](tx, "lab"); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("Get after delete = %v, want errs.ErrNotFound", err)
		}
		return nil
	})
}

func TestEvents(t *testing.T) {
	db := openDB(t)
	// Three transactions, as three batches of commands would be.
	batches := []struct {
		index uint64
		at    time.Time
		kinds []string
	}{
		{index: 3, at: t0, kinds: []string{"a", "b"}},
		{index: 7, at: t1, kinds: []string{"c"}},
		{index: 8, at: t1.Add(time.Second), kinds: []string{"d", "e", "f", "g"}},
	}
	var want []*store.Event
	for _, b := range batches {
		update(t, db, func(tx *store.Tx) error {
			for _, k := range b.kinds {
				e := &store.Event{Kind: k, Message: "event " + k, MachineID: "m1", Fields: map[string]string{"k": k}}
				if err := tx.UnsafeAppendEvent(e, b.index, b.at); err != nil {
					return err
				}
				want = append(want, &store.Event{
					Seq: uint64(len(want) + 1), Index: b.index, Time: b.at,
					Kind: k, Message: "event " + k, MachineID: "m1", Fields: map[string]string{"k": k},
				})
				if e.Seq != uint64(len(want)) {
					t.Errorf("event %s numbered %d, want %d", k, e.Seq, len(want))
				}
			}
			return nil
		})
	}
	view(t, db, func(tx *store.Tx) error {
		if got := tx.LastEventSeq(); got != 7 {
			t.Errorf("LastEventSeq = %d, want 7", got)
		}
		return nil
	})

	tests := map[string]struct {
		since    uint64
		limit    int
		from, to int // want[from:to]
	}{
		"all":              {since: 0, limit: 100, from: 0, to: 7},
		"exact limit":      {since: 0, limit: 7, from: 0, to: 7},
		"first two":        {since: 0, limit: 2, from: 0, to: 2},
		"middle":           {since: 2, limit: 3, from: 2, to: 5},
		"tail":             {since: 5, limit: 10, from: 5, to: 7},
		"last":             {since: 6, limit: 1, from: 6, to: 7},
		"none after last":  {since: 7, limit: 10, from: 7, to: 7},
		"far future":       {since: 1000, limit: 10, from: 7, to: 7},
		"zero limit":       {since: 0, limit: 0, from: 0, to: 0},
		"negative limit":   {since: 0, limit: -1, from: 0, to: 0},
		"one after middle": {since: 3, limit: 1, from: 3, to: 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			view(t, db, func(tx *store.Tx) error {
				got, err := tx.EventsSince(tc.since, tc.limit)
				if err != nil {
					t.Fatalf("EventsSince: %v", err)
				}
				var wantSlice []*store.Event
				if tc.to > tc.from {
					wantSlice = want[tc.from:tc.to]
				}
				if diff := cmp.Diff(wantSlice, got); diff != "" {
					t.Errorf("EventsSince(%d, %d) (-want +got):\n%s", tc.since, tc.limit, diff)
				}
				return nil
			})
		})
	}

	// A rolled-back append does not use up a sequence number.
	_ = db.Update(func(tx *store.Tx) error {
		if err := tx.UnsafeAppendEvent(&store.Event{Kind: "lost"}, 9, t1); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	update(t, db, func(tx *store.Tx) error {
		e := &store.Event{Kind: "h"}
		if err := tx.UnsafeAppendEvent(e, 10, t1); err != nil {
			return err
		}
		if e.Seq != 8 {
			t.Errorf("event after a rolled-back append numbered %d, want 8", e.Seq)
		}
		return nil
	})
}

// writeSampleStore creates a store at path with enough data to span many
// pages (applied index 201) and closes it.
func writeSampleStore(t *testing.T, path string) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer db.Close()
	populate(t, db, 200)
}

// populate writes n machines (each with two MACs), n events, and one
// object of every other kind, as if by command index 1..n+1.
func populate(t *testing.T, db *store.DB, n int) {
	t.Helper()
	update(t, db, func(tx *store.Tx) error {
		for i := range n {
			m := sampleMachine("m"+itoa(i), macFor(i, 0), macFor(i, 1))
			m.Tags = append(m.Tags, strings.Repeat("padding", 20))
			w := store.Write{Index: uint64(i + 1), Time: t0}
			if err := tx.UnsafePutMachine(m, w); err != nil {
				return err
			}
			if err := tx.UnsafeAppendEvent(&store.Event{Kind: "created", MachineID: m.ID, Message: "machine created"}, w.Index, t0); err != nil {
				return err
			}
		}
		w := store.Write{Index: uint64(n + 1), Time: t1}
		for _, o := range []store.Object{
			sampleSubnet("lab"), sampleLease("198.18.0.100"), sampleImage("debian"), sampleTemplate("install"),
			storedWorkflow(t, "wf1"), &store.Settings{SiteName: "fra1", UnknownMachines: "exit"}, sampleMember("n1"), sampleToken("t1"),
		} {
			if err := tx.UnsafePut(o, w); err != nil {
				return err
			}
		}
		return tx.UnsafeSetAppliedIndex(uint64(n + 1))
	})
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func macFor(i, nic int) string {
	return "02:00:" + hex2(nic) + ":" + hex2(i>>8&0xff) + ":" + hex2(i&0xff) + ":01"
}

// content is everything a store holds, read through its API.
type content struct {
	AppliedIndex uint64
	LastEventSeq uint64
	Machines     []*store.Machine
	MACOwners    map[string]string
	Subnets      []*store.Subnet
	Leases       []*store.Lease
	Images       []*store.Image
	Templates    []*store.Template
	Workflows    []*store.Workflow
	Settings     []*store.Settings
	Members      []*store.Member
	Tokens       []*store.Token
	Events       []*store.Event
}

func readContent(t *testing.T, db *store.DB) content {
	t.Helper()
	var c content
	view(t, db, func(tx *store.Tx) error {
		c.AppliedIndex = tx.AppliedIndex()
		c.LastEventSeq = tx.LastEventSeq()
		var err error
		if c.Machines, err = store.List[store.Machine](tx); err != nil {
			return err
		}
		c.MACOwners = map[string]string{}
		for _, m := range c.Machines {
			for _, nic := range m.Interfaces {
				o, err := tx.MachineByMAC(nic.MAC)
				if err != nil {
					return err
				}
				c.MACOwners[nic.MAC] = o.ID
			}
		}
		if c.Subnets, err = store.List[store.Subnet](tx); err != nil {
			return err
		}
		if c.Leases, err = store.List[store.Lease](tx); err != nil {
			return err
		}
		if c.Images, err = store.List[store.Image](tx); err != nil {
			return err
		}
		if c.Templates, err = store.List[store.Template](tx); err != nil {
			return err
		}
		if c.Workflows, err = store.List[store.Workflow](tx); err != nil {
			return err
		}
		if c.Settings, err = store.List[store.Settings](tx); err != nil {
			return err
		}
		if c.Members, err = store.List[store.Member](tx); err != nil {
			return err
		}
		if c.Tokens, err = store.List[store.Token](tx); err != nil {
			return err
		}
		c.Events, err = tx.EventsSince(0, 1<<30)
		return err
	})
	return c
}

// assertCorrupt checks that opening path fails with ErrCorrupt, names the
// file, and leaves its bytes alone.
func assertCorrupt(t *testing.T, path string) {
	t.Helper()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := openNoPanic(path)
	if err == nil {
		db.Close()
		t.Fatalf("Open of a damaged file succeeded")
	}
	if !errors.Is(err, store.ErrCorrupt) {
		t.Errorf("Open = %v, want an error matching ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open error %q does not name the file %s", err, path)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the damaged file is gone after Open: %v", err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("Open changed the damaged file (%d bytes before, %d after)", len(before), len(after))
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("Open left files beside the damaged one: %v", names)
	}

	// A second attempt fails the same way: the first did not leave the
	// file locked or half-repaired.
	if db, err := openNoPanic(path); err == nil || !errors.Is(err, store.ErrCorrupt) {
		if db != nil {
			db.Close()
		}
		t.Errorf("second Open = %v, want ErrCorrupt", err)
	}
}

// openNoPanic turns a panic in Open into a test failure with a clear
// message instead of a crashed test binary.
func openNoPanic(path string) (db *store.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, errors.New("Open panicked: "+fmtAny(r))
		}
	}()
	return store.Open(path)
}

func fmtAny(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "non-string panic value"
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestOpenCorrupt(t *testing.T) {
	t.Run("random bytes", func(t *testing.T) {
		for _, size := range []int{4096, 5000, 64 << 10} {
			path := filepath.Join(t.TempDir(), "site.db")
			if err := os.WriteFile(path, randomBytes(uint64(size), size), 0o600); err != nil {
				t.Fatal(err)
			}
			assertCorrupt(t, path)
		}
	})
	t.Run("zeros", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "site.db")
		if err := os.WriteFile(path, make([]byte, 32<<10), 0o600); err != nil {
			t.Fatal(err)
		}
		assertCorrupt(t, path)
	})
	t.Run("empty", func(t *testing.T) {
		// A file that lost its contents, not a new store.
		path := filepath.Join(t.TempDir(), "site.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		assertCorrupt(t, path)
	})
	t.Run("short garbage", func(t *testing.T) {
		for _, size := range []int{1, 100, 4095} {
			path := filepath.Join(t.TempDir(), "site.db")
			if err := os.WriteFile(path, randomBytes(7, size), 0o600); err != nil {
				t.Fatal(err)
			}
			assertCorrupt(t, path)
		}
	})
	t.Run("truncated store", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "good.db")
		writeSampleStore(t, src)
		full, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{512, 4096 + 100} {
			path := filepath.Join(t.TempDir(), "site.db")
			if err := os.WriteFile(path, full[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			assertCorrupt(t, path)
		}
	})
	t.Run("truncated after the meta pages", func(t *testing.T) {
		// The meta pages are intact and name pages past the end of the
		// file: reading those would fault.
		src := filepath.Join(t.TempDir(), "good.db")
		writeSampleStore(t, src)
		full, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		// bbolt grows files ahead of use: cut below the last used page.
		hwm := len(readPages(t, src)) * pageSize
		if hwm > len(full) {
			t.Fatalf("pages end at %d, past the %d-byte file", hwm, len(full))
		}
		for _, size := range []int{2 * 4096, 3*4096 + 17, hwm / 2, hwm - 1} {
			path := filepath.Join(t.TempDir(), "site.db")
			if err := os.WriteFile(path, full[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			assertCorrupt(t, path)
			_, err := store.Open(path)
			if err == nil || !strings.Contains(err.Error(), "truncated") {
				t.Errorf("Open of a file cut to %d bytes = %v, want it to say the file is truncated", size, err)
			}
		}
	})
	t.Run("newer schema", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "site.db")
		writeSampleStore(t, path)
		bdb, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = bdb.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
		})
		bdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		assertCorrupt(t, path)
	})

	// A real store whose pages past the two meta pages are damaged: the
	// meta pages are intact, so only reading the data finds the damage.
	damaged := map[string]func(info pageInfo) bool{
		"every data page": func(pageInfo) bool { return true },
		"freelist page":   func(p pageInfo) bool { return p.typ == "freelist" },
		"leaf pages":      func(p pageInfo) bool { return p.typ == "leaf" && p.id%2 == 0 },
		"branch pages":    func(p pageInfo) bool { return p.typ == "branch" },
	}
	for name, pick := range damaged {
		t.Run("damaged "+name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "site.db")
			writeSampleStore(t, path)
			if name == "freelist page" {
				syncFreelist(t, path)
			}
			pages := readPages(t, path)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range pages {
				if p.id < 2 || !pick(p) {
					continue
				}
				n++
				garbage := randomBytes(p.id, pageSize)
				if _, err := f.WriteAt(garbage, int64(p.id)*pageSize); err != nil {
					t.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("no %s to damage among %d pages", name, len(pages))
			}
			t.Logf("damaged %d of %d pages", n, len(pages))
			assertCorrupt(t, path)
		})
	}
}

const pageSize = 4096

// syncFreelist rewrites a store file so that it has a freelist page, as a
// file written by bbolt's default options does, whatever the options the
// store itself uses.
func syncFreelist(t *testing.T, path string) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: false})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("x"), nil) })
	if err == nil {
		err = bdb.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("x")) })
	}
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	// The undamaged file opens (a copy: opening may rewrite the freelist).
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cp)
	if err != nil {
		t.Fatalf("store with a synced freelist does not open: %v", err)
	}
	if got := db.AppliedIndex(); got != 201 {
		t.Errorf("AppliedIndex of the copy = %d, want 201", got)
	}
	db.Close()
}

type pageInfo struct {
	id  uint64
	typ string
}

// readPages lists the pages of a bbolt file in use, with their types.
func readPages(t *testing.T, path string) []pageInfo {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if got := bdb.Info().PageSize; got != pageSize {
		t.Skipf("page size is %d, the test assumes %d", got, pageSize)
	}
	var out []pageInfo
	err = bdb.View(func(tx *bolt.Tx) error {
		for id := 0; ; id++ {
			p, err := tx.Page(id)
			if err != nil {
				return err
			}
			if p == nil {
				return nil
			}
			out = append(out, pageInfo{id: uint64(p.ID), typ: p.Type})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSnapshotRestore(t *testing.T) {
	src := openDB(t)
	populate(t, src, 50)
	want := readContent(t, src)

	snap, err := src.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if got := snap.Index(); got != 51 {
		t.Errorf("snapshot Index = %d, want 51", got)
	}
	// A write after the snapshot began is not in it.
	update(t, src, func(tx *store.Tx) error {
		if err := tx.UnsafePut(sampleSubnet("later"), store.Write{Index: 52, Time: t1}); err != nil {
			return err
		}
		return tx.UnsafeSetAppliedIndex(52)
	})
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) || n < 4096 {
		t.Errorf("WriteTo wrote %d bytes, buffer has %d", n, buf.Len())
	}
	snap.Release()
	snap.Release() // twice is fine

	dst := openDB(t)
	populate(t, dst, 3) // different content, to be replaced
	update(t, dst, func(tx *store.Tx) error {
		return tx.UnsafePut(sampleImage("only-in-dst"), store.Write{Index: 99, Time: t1})
	})
	changed := dst.Changed()
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if diff := cmp.Diff(want, readContent(t, dst)); diff != "" {
		t.Errorf("restored content (-want +got):\n%s", diff)
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Error("Changed did not fire after Restore")
	}
	if _, err := os.Stat(dst.Path() + ".restore"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Restore left its temporary file: %v", err)
	}

	// The restored store is usable and durable.
	update(t, dst, func(tx *store.Tx) error {
		if err := tx.UnsafePut(sampleSubnet("after"), store.Write{Index: 52, Time: t1}); err != nil {
			return err
		}
		return tx.UnsafeSetAppliedIndex(52)
	})
	want.AppliedIndex = 52
	want.Subnets = append(want.Subnets, nil)
	copy(want.Subnets[1:], want.Subnets)
	s := sampleSubnet("after")
	s.Meta = store.Meta{Version: 52, CreatedAt: t1, UpdatedAt: t1}
	want.Subnets[0] = s
	path := dst.Path()
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := store.Open(path)
	if err != nil {
		t.Fatalf("reopen restored store: %v", err)
	}
	defer reopened.Close()
	if diff := cmp.Diff(want, readContent(t, reopened)); diff != "" {
		t.Errorf("restored store after reopen (-want +got):\n%s", diff)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestRestoreBad(t *testing.T) {
	db := openDB(t)
	populate(t, db, 20)
	want := readContent(t, db)

	// A good snapshot to cut short.
	good := filepath.Join(t.TempDir(), "good.db")
	writeSampleStore(t, good)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	readBoom := errors.New("network went away")
	tests := map[string]struct {
		r       io.Reader
		corrupt bool // the error must match ErrCorrupt
		is      error
	}{
		"random bytes":    {r: bytes.NewReader(randomBytes(1, 64<<10)), corrupt: true},
		"short garbage":   {r: bytes.NewReader(randomBytes(2, 100)), corrupt: true},
		"empty":           {r: bytes.NewReader(nil), corrupt: false},
		"truncated":       {r: bytes.NewReader(goodBytes[:3*4096+17]), corrupt: true},
		"read error":      {r: &failingReader{data: goodBytes[:8192], err: readBoom}, is: readBoom},
		"damaged middles": {r: bytes.NewReader(damageMiddle(goodBytes)), corrupt: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := db.Restore(tc.r)
			if err == nil {
				t.Fatal("Restore succeeded")
			}
			if tc.corrupt && !errors.Is(err, store.ErrCorrupt) {
				t.Errorf("Restore = %v, want ErrCorrupt", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Restore = %v, want %v", err, tc.is)
			}
			if diff := cmp.Diff(want, readContent(t, db)); diff != "" {
				t.Errorf("failed Restore changed the store (-want +got):\n%s", diff)
			}
			if _, err := os.Stat(db.Path() + ".restore"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed Restore left its temporary file: %v", err)
			}
		})
	}

	// Still usable for writes.
	update(t, db, func(tx *store.Tx) error {
		if err := tx.UnsafePut(sampleToken("t2"), store.Write{Index: 30, Time: t1}); err != nil {
			return err
		}
		return tx.UnsafeSetAppliedIndex(30)
	})
	if got := db.AppliedIndex(); got != 30 {
		t.Errorf("AppliedIndex after write = %d, want 30", got)
	}
}

// damageMiddle returns a copy of a bbolt file with every page after the
// meta pages overwritten.
func damageMiddle(b []byte) []byte {
	out := bytes.Clone(b)
	copy(out[2*pageSize:], randomBytes(3, len(out)-2*pageSize))
	return out
}

func TestRestoreWaitsForSnapshot(t *testing.T) {
	src := openDB(t)
	populate(t, src, 5)
	var buf bytes.Buffer
	snap, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}

	dst := openDB(t)
	held, err := dst.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- dst.Restore(bytes.NewReader(buf.Bytes())) }()
	select {
	case err := <-done:
		t.Fatalf("Restore returned (%v) while a snapshot of the store was open", err)
	case <-time.After(100 * time.Millisecond):
	}
	held.Release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Restore did not finish after the snapshot was released")
	}
	snap.Release()
	if diff := cmp.Diff(readContent(t, src), readContent(t, dst)); diff != "" {
		t.Errorf("restored content (-src +dst):\n%s", diff)
	}
}

func TestSnapshotClosed(t *testing.T) {
	db := openDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Snapshot(); err == nil {
		t.Error("Snapshot of a closed store succeeded")
	}
}

func TestOpenLocked(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the lock timeout")
	}
	db := openDB(t)
	start := time.Now()
	_, err := store.Open(db.Path())
	if err == nil {
		t.Fatal("second Open of a store in use succeeded")
	}
	if errors.Is(err, store.ErrCorrupt) {
		t.Errorf("a locked store is reported as corrupt: %v", err)
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q does not say the store is locked", err)
	}
	t.Logf("second Open failed after %v", time.Since(start).Round(time.Millisecond))
}

// TestUpdatePanic: a panic inside Update (the FSM panics on a command it
// cannot apply) rolls the transaction back and does not leave the store
// locked, so Restore and Close still work.
func TestUpdatePanic(t *testing.T) {
	db := openDB(t)
	populate(t, db, 2)
	want := readContent(t, db)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic from fn", r)
			}
		}()
		_ = db.Update(func(tx *store.Tx) error {
			if err := tx.UnsafePut(sampleSubnet("half"), store.Write{Index: 9, Time: t1}); err != nil {
				return err
			}
			if err := tx.UnsafeSetAppliedIndex(9); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if diff := cmp.Diff(want, readContent(t, db)); diff != "" {
		t.Errorf("a panicking Update changed the store (-want +got):\n%s", diff)
	}
	done := make(chan error, 1)
	go func() {
		var buf bytes.Buffer
		snap, err := db.Snapshot()
		if err != nil {
			done <- err
			return
		}
		_, err = snap.WriteTo(&buf)
		snap.Release()
		if err == nil {
			err = db.Restore(&buf)
		}
		if err == nil {
			err = db.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Restore/Close after a panicking Update: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Restore/Close after a panicking Update deadlocked")
	}
}

// TestImageArtifacts: the digests an image points at are an OS image's
// sha256 (whatever else locates it) and an installer's "sha256:"
// kernel and initrd, in lowercase; an OS image is content-addressed
// unless it is a file of the artifact directory.
func TestImageArtifacts(t *testing.T) {
	upper := strings.Repeat("AB", 32)
	lower := strings.ToLower(upper)
	tests := map[string]struct {
		img  store.Image
		want []store.ImageArtifact
		cas  bool
	}{
		"sha256 alone": {store.Image{Type: store.ImageOS, SHA256: upper, Size: 7}, []store.ImageArtifact{{SHA256: lower, Size: 7, Role: "image"}}, true},
		"url":          {store.Image{Type: store.ImageOS, URL: "https://x/y", SHA256: lower}, []store.ImageArtifact{{SHA256: lower, Role: "image"}}, true},
		"file":         {store.Image{Type: store.ImageOS, File: "y.raw", SHA256: lower}, []store.ImageArtifact{{SHA256: lower, Role: "image"}}, false},
		"no sha256":    {store.Image{Type: store.ImageOS, URL: "https://x/y"}, nil, false},
		"installer refs": {store.Image{Type: store.ImageInstaller, Kernel: "sha256:" + lower, Initrd: "SHA256:" + strings.Repeat("CD", 32)},
			[]store.ImageArtifact{{SHA256: strings.Repeat("cd", 32), Role: "initrd"}, {SHA256: lower, Role: "kernel"}}, false},
		"installer files": {store.Image{Type: store.ImageInstaller, Kernel: "vmlinuz", Initrd: "https://x/initrd"}, nil, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.img.Artifacts()); diff != "" {
				t.Errorf("Artifacts() (-want +got):\n%s", diff)
			}
			if got := tc.img.ContentAddressed(); got != tc.cas {
				t.Errorf("ContentAddressed() = %v, want %v", got, tc.cas)
			}
		})
	}
	for ref, want := range map[string]string{"sha256:" + lower: lower, "SHA256:" + upper: lower, lower: "", "sha256:" + lower[:10]: "", "sha512:" + lower: ""} {
		if got, ok := store.DigestRef(ref); got != want && ok || ok != (want != "") {
			t.Errorf("DigestRef(%q) = %q, %v; want %q", ref, got, ok, want)
		}
	}
}

// TestImageArch checks an image's arch: an installer's may be one of a
// machine's architectures, an OS image has none.
func TestImageArch(t *testing.T) {
	inst := func(arch string) *store.Image {
		return &store.Image{Name: "i", Type: store.ImageInstaller, Kernel: "k", Initrd: "i", Arch: arch}
	}
	for name, tc := range map[string]struct {
		img     *store.Image
		problem string // "" valid
		arch    string // InstallerArch
	}{
		"none is x86_64":   {inst(""), "", store.ArchX86},
		"x86_64":           {inst("x86_64"), "", store.ArchX86},
		"aarch64":          {inst("aarch64"), "", store.ArchARM64},
		"arm64 is no name": {inst("arm64"), "arch", ""},
		"on an os image": {&store.Image{Name: "o", Type: store.ImageOS, File: "o.raw", Format: "raw", Arch: "aarch64"},
			"arch: is for installer images only", ""},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.img.Validate()
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("Validate() = %v, want valid", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.problem)
			}
			if tc.arch != "" && tc.img.InstallerArch() != tc.arch {
				t.Errorf("InstallerArch() = %q, want %q", tc.img.InstallerArch(), tc.arch)
			}
		})
	}
}
