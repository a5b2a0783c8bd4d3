package store_test

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// machineAt is the id and interface MachineByIP finds for addr, or "" if
// none.
func machineAt(t *testing.T, db *store.DB, addr string) (string, int) {
	t.Helper()
	var id string
	var nic int
	view(t, db, func(tx *store.Tx) error {
		m, i, err := tx.MachineByIP(netip.MustParseAddr(addr))
		if errors.Is(err, errs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		id, nic = m.ID, i
		return nil
	})
	return id, nic
}

// The IP index follows every put and delete of a machine.
func TestMachineByIP(t *testing.T) {
	db := openDB(t)
	w := store.Write{Index: 1, Time: time.Unix(1, 0).UTC()}
	m := sampleMachine("m1", "02:00:00:00:00:01", "02:00:00:00:00:02")
	m.Interfaces[1].IP, m.Interfaces[1].Subnet = "198.18.0.10", "lab"
	if err := putMachine(t, db, m, w); err != nil {
		t.Fatal(err)
	}
	if id, nic := machineAt(t, db, "198.18.0.10"); id != "m1" || nic != 1 {
		t.Errorf("198.18.0.10 is at %q interface %d, want m1 interface 1", id, nic)
	}
	// A new address replaces the old one in the index.
	m.Interfaces[1].IP = "198.18.0.11"
	w.Index++
	if err := putMachine(t, db, m, w); err != nil {
		t.Fatal(err)
	}
	if id, _ := machineAt(t, db, "198.18.0.10"); id != "" {
		t.Errorf("the old address still finds %q", id)
	}
	if id, _ := machineAt(t, db, "198.18.0.11"); id != "m1" {
		t.Errorf("the new address finds %q, want m1", id)
	}
	w.Index++
	update(t, db, func(tx *store.Tx) error { return tx.UnsafeDeleteMachine("m1", 0) })
	if id, _ := machineAt(t, db, "198.18.0.11"); id != "" {
		t.Errorf("a deleted machine is still found at its address: %q", id)
	}
}

// A store written before the IP index existed gets it built at open.
func TestIPIndexBuiltForAnOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m := sampleMachine("m1", "02:00:00:00:00:01")
	m.Interfaces[0].IP = "198.18.0.20"
	if err := putMachine(t, db, m, store.Write{Index: 1, Time: time.Unix(1, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("ip_index")) }); err != nil {
		t.Fatal(err)
	}
	bdb.Close()

	db, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if id, _ := machineAt(t, db, "198.18.0.20"); id != "m1" {
		t.Errorf("after reopening an old file, 198.18.0.20 finds %q, want m1", id)
	}
}
