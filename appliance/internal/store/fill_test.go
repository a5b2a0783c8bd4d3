package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestEventPagesFull appends events in many small transactions, as a
// storm of reports commits them, and checks that their pages end up
// mostly full: appended keys never come back to a split page, so a page
// left half full (bbolt's default for random inserts) would stay so, and
// every event would cost twice the pages written and kept.
func TestEventPagesFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range 200 {
		update(t, db, func(tx *store.Tx) error {
			for range 20 {
				n++
				e := &store.Event{Kind: "action.progress", MachineID: fmt.Sprintf("w%d", n%64), Message: fmt.Sprintf("image.write %d%%", n%100)}
				if err := tx.UnsafeAppendEvent(e, uint64(n), t0); err != nil {
					return err
				}
			}
			return tx.UnsafeSetAppliedIndex(uint64(n))
		})
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		st := tx.Bucket([]byte("events")).Stats()
		if st.KeyN != n {
			return fmt.Errorf("events bucket holds %d keys, want %d", st.KeyN, n)
		}
		fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
		t.Logf("%d events in %d leaf pages, %.0f%% full", st.KeyN, st.LeafPageN, fill*100)
		if fill < 0.8 {
			return fmt.Errorf("the events' leaf pages are %.0f%% full, want at least 80%% (%d pages for %d events)", fill*100, st.LeafPageN, st.KeyN)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
