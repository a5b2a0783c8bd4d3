package store_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// BenchmarkCommit measures the store alone (no Raft): one transaction of 64
// writes with fsync, the shape of one group commit, for machine puts
// (random keys and a MAC-index entry) and event appends (sequential keys).
func BenchmarkCommit(b *testing.B) {
	b.Run("machine", func(b *testing.B) {
		db := benchDB(b)
		n := 0
		for i := 0; b.Loop(); i++ {
			err := db.Update(func(tx *store.Tx) error {
				for j := range 64 {
					n++
					id := fmt.Sprintf("w%d-%d", j, i)
					m := &store.Machine{ID: id, Hostname: id, Arch: "x86_64", State: store.StateReady,
						Interfaces: []store.Interface{{MAC: fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", j, byte(i>>16), byte(i>>8), byte(i))}}}
					if err := tx.UnsafePutMachine(m, store.Write{Index: uint64(n), Time: time.Now()}); err != nil {
						return err
					}
				}
				return tx.UnsafeSetAppliedIndex(uint64(n))
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "writes/s")
	})
	b.Run("event", func(b *testing.B) {
		db := benchDB(b)
		n := 0
		for b.Loop() {
			err := db.Update(func(tx *store.Tx) error {
				for j := range 64 {
					n++
					e := &store.Event{Kind: "action.progress", MachineID: fmt.Sprintf("w%d", j), Message: "image.write 40%"}
					if err := tx.UnsafeAppendEvent(e, uint64(n), time.Now()); err != nil {
						return err
					}
				}
				return tx.UnsafeSetAppliedIndex(uint64(n))
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "writes/s")
	})
}

func benchDB(b *testing.B) *store.DB {
	db, err := store.Open(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
