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

// The rule that an address is never held by two MACs is the site's
// (site.TestLeaseOwnership); the store keeps the index of leases by MAC.

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
