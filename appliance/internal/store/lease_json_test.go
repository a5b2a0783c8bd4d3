package store

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// leaseCases are leases the hand-written record covers and leases it
// leaves to encoding/json: changes of base.
func leaseCases() (Lease, map[string]func(l *Lease)) {
	t0 := time.Date(2026, 12, 7, 17, 0, 0, 123456789, time.UTC)
	base := Lease{Meta: Meta{Version: 42, CreatedAt: t0, UpdatedAt: t0.Add(time.Second)},
		IP: "198.18.1.7", MAC: "02:00:00:00:00:07", Subnet: "lab", State: LeaseActive, Starts: t0, Expires: t0.Add(time.Hour)}
	return base, map[string]func(l *Lease){
		"plain":              func(*Lease) {},
		"machine, hostname":  func(l *Lease) { l.MachineID, l.Hostname = "m-1", "web-0001" },
		"zero times":         func(l *Lease) { l.Meta, l.Starts, l.Expires = Meta{}, time.Time{}, time.Time{} },
		"whole seconds":      func(l *Lease) { l.Starts = l.Starts.Truncate(time.Second) },
		"an offset":          func(l *Lease) { l.Starts = l.Starts.In(time.FixedZone("x", -7*3600-1800)) },
		"local time":         func(l *Lease) { l.Expires = l.Expires.Local() },
		"unknown state":      func(l *Lease) { l.State = "future" },
		"html in a hostname": func(l *Lease) { l.Hostname = "a<b>&c" },
		"quote, backslash":   func(l *Lease) { l.Hostname = `a"b\c` },
		"control byte":       func(l *Lease) { l.Hostname = "a\tb" },
		"non-ASCII":          func(l *Lease) { l.Hostname = "hôte\u2028" },
		"invalid UTF-8":      func(l *Lease) { l.Hostname = "a\xffb" },
		"year 10000":         func(l *Lease) { l.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"an offset of a day": func(l *Lease) { l.Starts = l.Starts.In(time.FixedZone("y", 24*3600)) },
	}
}

// TestMarshalLease: the hand-written record is byte for byte what
// encoding/json writes, for leases it covers and for those it leaves to
// encoding/json.
func TestMarshalLease(t *testing.T) {
	base, tests := leaseCases()
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			l := base
			change(&l)
			want, wantErr := json.Marshal(&l)
			got, err := marshalLease(&l)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("marshalLease error %v, encoding/json's %v", err, wantErr)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("marshalLease:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestPutLeaseRecord: the lease's record keeps its creation time, checks
// the version expected, and is the generic path's when the caller's cur
// is not what is stored.
func TestPutLeaseRecord(t *testing.T) {
	db, err := Open(t.TempDir() + "/s.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t0 := time.Date(2026, 12, 7, 17, 0, 0, 0, time.UTC)
	l := &Lease{IP: "198.18.1.7", MAC: "02:00:00:00:00:07", Subnet: "lab", State: LeaseActive, Starts: t0, Expires: t0.Add(time.Hour)}
	update := func(f func(tx *Tx) error) error { return db.Update(f) }
	if err := update(func(tx *Tx) error { return tx.UnsafePutLease(l, nil, Write{Index: 5, Time: t0}) }); err != nil {
		t.Fatal(err)
	}
	var cur *Lease
	_ = db.View(func(tx *Tx) error { cur, err = Get[Lease](tx, l.IP); return err })
	if err != nil || cur.Version != 5 || !cur.CreatedAt.Equal(t0) {
		t.Fatalf("stored %+v, %v", cur, err)
	}
	renewed := *l
	renewed.Expires = t0.Add(2 * time.Hour)
	t1 := t0.Add(time.Minute)
	err = update(func(tx *Tx) error { return tx.UnsafePutLease(&renewed, cur, Write{Index: 9, Expect: 4, Time: t1}) })
	if e, ok := errs.AsError(err); !ok || e.Code != errs.CodeConflict {
		t.Fatalf("put expecting version 4 of a lease at 5: %v, want a conflict", err)
	}
	err = update(func(tx *Tx) error { return tx.UnsafePutLease(&renewed, nil, Write{Index: 9, Expect: 4, Time: t1}) })
	if e, ok := errs.AsError(err); !ok || e.Code != errs.CodeConflict {
		t.Fatalf("put expecting version 4 without the stored lease: %v, want a conflict", err)
	}
	if err := update(func(tx *Tx) error { return tx.UnsafePutLease(&renewed, cur, Write{Index: 9, Expect: 5, Time: t1}) }); err != nil {
		t.Fatal(err)
	}
	var got *Lease
	_ = db.View(func(tx *Tx) error { got, err = Get[Lease](tx, l.IP); return err })
	if err != nil || got.Version != 9 || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t1) || !got.Expires.Equal(renewed.Expires) {
		t.Errorf("renewed: %+v, %v", got, err)
	}
}

// TestMarshalLeaseKnowsEveryField: appendLeaseJSON writes the fields of
// Lease and Meta by name, so a field added to either must be added there
// too; TestMarshalLease would miss an omitempty one left at zero.
func TestMarshalLeaseKnowsEveryField(t *testing.T) {
	var names []string
	for _, typ := range []reflect.Type{reflect.TypeFor[Meta](), reflect.TypeFor[Lease]()} {
		for f := range typ.Fields() {
			if !f.Anonymous {
				names = append(names, f.Tag.Get("json"))
			}
		}
	}
	want := []string{"version", "created_at", "updated_at", "ip", "mac", "machine_id,omitempty",
		"hostname,omitempty", "subnet", "state", "starts", "expires"}
	if !slices.Equal(names, want) {
		t.Errorf("Lease's fields are %q; appendLeaseJSON writes %q: make it write the new ones", names, want)
	}
}

// TestDecodeLease: a lease record reads back as encoding/json reads it,
// whether it is in the hand-written form (parsed by hand: every case
// appendLeaseJSON writes) or not (another writer's spacing, key order,
// escapes).
func TestDecodeLease(t *testing.T) {
	base, tests := leaseCases()
	records := map[string][]byte{
		"spaces":          []byte(`{ "version": 7, "ip": "198.18.1.7", "mac": "02:00:00:00:00:07", "subnet": "lab", "state": "active" }`),
		"other order":     []byte(`{"ip":"198.18.1.7","version":7,"mac":"02:00:00:00:00:07","subnet":"lab","state":"offered"}`),
		"escaped":         []byte(`{"version":7,"created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","ip":"198.18.1.7","mac":"02:00:00:00:00:07","hostname":"a\u0041","subnet":"lab","state":"active","starts":"0001-01-01T00:00:00Z","expires":"0001-01-01T00:00:00Z"}`),
		"unknown key":     []byte(`{"version":7,"created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","ip":"198.18.1.7","mac":"02:00:00:00:00:07","subnet":"lab","state":"active","starts":"0001-01-01T00:00:00Z","expires":"0001-01-01T00:00:00Z","later":1}`),
		"leading zero":    []byte(`{"version":07}`),
		"bad time":        []byte(`{"version":7,"created_at":"yesterday","updated_at":"0001-01-01T00:00:00Z","ip":"198.18.1.7","mac":"02:00:00:00:00:07","subnet":"lab","state":"active","starts":"0001-01-01T00:00:00Z","expires":"0001-01-01T00:00:00Z"}`),
		"trailing junk":   []byte(`{"version":7,"created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z","ip":"198.18.1.7","mac":"02:00:00:00:00:07","subnet":"lab","state":"active","starts":"0001-01-01T00:00:00Z","expires":"0001-01-01T00:00:00Z"}}`),
		"version too big": []byte(`{"version":184467440737095516150}`),
	}
	for name, change := range tests {
		l := base
		change(&l)
		raw, err := json.Marshal(&l)
		if err != nil {
			continue // no record: encoding/json cannot write the lease
		}
		if _, hand := appendLeaseJSON(nil, &l); hand && !parseLeaseJSON(raw, &Lease{}) {
			t.Errorf("%s: the hand-written record %s is not parsed by hand", name, raw)
		}
		records[name] = raw
	}
	for name, raw := range records {
		t.Run(name, func(t *testing.T) { checkDecodeLease(t, raw) })
	}
}

// checkDecodeLease checks that the store decodes raw as encoding/json
// does: the same lease, or an error for both.
func checkDecodeLease(t *testing.T, raw []byte) {
	var want Lease
	wantErr := json.Unmarshal(raw, &want)
	got, err := decode[Lease](bucketLeases, []byte("k"), raw)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("decode %s: error %v, encoding/json's %v", raw, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(*got, want) {
		t.Errorf("decode %s:\n got %+v\nwant %+v", raw, *got, want)
	}
}

// FuzzDecodeLease: whatever the bytes, the store decodes a lease record
// as encoding/json does.
func FuzzDecodeLease(f *testing.F) {
	base, tests := leaseCases()
	for _, change := range tests {
		l := base
		change(&l)
		raw, _ := json.Marshal(&l)
		f.Add(raw)
	}
	f.Fuzz(checkDecodeLease)
}
