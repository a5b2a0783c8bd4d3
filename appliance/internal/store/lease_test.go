package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

func lease(ip, mac string, state store.LeaseState, expires time.Time) *store.Lease {
	return &store.Lease{IP: ip, MAC: mac, Subnet: "lab", State: state, Starts: t0, Expires: expires}
}

func putLease(tx *store.Tx, l *store.Lease, at time.Time) error {
	return tx.UnsafePut(l, store.Write{Index: 100, Time: at})
}

// TestLeaseOwnership checks the store's rule that an address is never held
// by two MACs, whatever proposes the lease.
func TestLeaseOwnership(t *testing.T) {
	const a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	hour := t0.Add(time.Hour)
	tests := map[string]struct {
		first   *store.Lease
		second  *store.Lease
		at      time.Time
		wantErr error
	}{
		"other MAC while active":      {lease("198.18.0.100", a, store.LeaseActive, hour), lease("198.18.0.100", b, store.LeaseActive, hour), t0, errs.ErrConflict},
		"other MAC while offered":     {lease("198.18.0.100", a, store.LeaseOffered, hour), lease("198.18.0.100", b, store.LeaseActive, hour), t0, errs.ErrConflict},
		"other MAC during quarantine": {lease("198.18.0.100", a, store.LeaseDeclined, hour), lease("198.18.0.100", b, store.LeaseActive, hour), t0, errs.ErrConflict},
		"other MAC after expiry":      {lease("198.18.0.100", a, store.LeaseActive, hour), lease("198.18.0.100", b, store.LeaseActive, hour.Add(time.Hour)), hour, nil},
		"other MAC after release":     {lease("198.18.0.100", a, store.LeaseReleased, t0), lease("198.18.0.100", b, store.LeaseActive, hour), t0, nil},
		"same MAC renews":             {lease("198.18.0.100", a, store.LeaseActive, hour), lease("198.18.0.100", a, store.LeaseActive, hour.Add(time.Hour)), t0, nil},
		"outside the subnet":          {nil, lease("198.19.0.1", a, store.LeaseActive, hour), t0, errs.ErrInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			db := openDB(t)
			update(t, db, func(tx *store.Tx) error {
				if err := tx.UnsafePut(sampleSubnet("lab"), store.Write{Index: 1, Time: t0}); err != nil {
					return err
				}
				if tc.first == nil {
					return nil
				}
				return putLease(tx, tc.first, t0)
			})
			var err error
			update(t, db, func(tx *store.Tx) error {
				err = putLease(tx, tc.second, tc.at)
				if _, ok := errs.AsError(err); ok {
					return nil
				}
				return err
			})
			if !errors.Is(err, tc.wantErr) && !(err == nil && tc.wantErr == nil) {
				t.Fatalf("second lease: %v, want %v", err, tc.wantErr)
			}
			view(t, db, func(tx *store.Tx) error {
				got, gerr := store.Get[store.Lease](tx, tc.second.IP)
				switch {
				case tc.wantErr == nil && (gerr != nil || got.MAC != tc.second.MAC):
					t.Errorf("lease at %s = %+v, %v; want it held by %s", tc.second.IP, got, gerr, tc.second.MAC)
				case tc.wantErr != nil && tc.first != nil && (gerr != nil || got.MAC != tc.first.MAC):
					t.Errorf("refused lease changed the address: %+v", got)
				}
				return nil
			})
		})
	}
}

func TestLeaseByMAC(t *testing.T) {
	const a = "02:00:00:00:00:0a"
	db := openDB(t)
	hour := t0.Add(time.Hour)
	gen := func() (g uint64) {
		view(t, db, func(tx *store.Tx) error { g = tx.IPAMGeneration(); return nil })
		return g
	}
	update(t, db, func(tx *store.Tx) error { return tx.UnsafePut(sampleSubnet("lab"), store.Write{Index: 1, Time: t0}) })
	g0 := gen()
	update(t, db, func(tx *store.Tx) error {
		return putLease(tx, lease("198.18.0.100", "02:00:00:00:00:0A", store.LeaseActive, hour), t0)
	})
	if gen() != g0 {
		t.Error("a DHCP lease commit moved the IPAM generation")
	}
	// The MAC moves to another address: its old lease goes.
	update(t, db, func(tx *store.Tx) error { return putLease(tx, lease("198.18.0.101", a, store.LeaseActive, hour), t0) })
	view(t, db, func(tx *store.Tx) error {
		l, err := tx.LeaseByMAC("lab", "02-00-00-00-00-0a")
		if err != nil || l.IP != "198.18.0.101" {
			t.Errorf("LeaseByMAC = %+v, %v; want 198.18.0.101", l, err)
		}
		if _, err := store.Get[store.Lease](tx, "198.18.0.100"); err == nil {
			t.Error("the MAC's old lease is still there")
		}
		return nil
	})
	// Declining quarantines the address and unlinks the MAC.
	update(t, db, func(tx *store.Tx) error { return putLease(tx, lease("198.18.0.101", a, store.LeaseDeclined, hour), t0) })
	view(t, db, func(tx *store.Tx) error {
		if _, err := tx.LeaseByMAC("lab", a); !errors.Is(err, errs.ErrNotFound) {
			t.Errorf("LeaseByMAC after decline: %v, want not found", err)
		}
		return nil
	})
	// An operator deleting a lease frees it and moves the generation.
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeDelete(&store.Lease{}, "198.18.0.101", 0) })
	if gen() == g0 {
		t.Error("deleting a lease did not move the IPAM generation")
	}
}
