package site

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
)

// BenchmarkApplyMachinePuts measures the state machine's part of a
// machine put (PutMachineV2 as the proposer encodes it: decode, checks,
// the machine, its MAC index entry and its event, and the store's commit
// with fsync) in groups of 32, the size of a group commit under load,
// with the keys of 64 writers (BenchmarkCommit in package cluster). The
// groups are the same on every run, so that instruction counts
// (valgrind --tool=callgrind) compare between builds. An op is a
// group; writes/s counts machines.
func BenchmarkApplyMachinePuts(b *testing.B) {
	db, err := store.Open(filepath.Join(b.TempDir(), "site.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	sm := NewStateMachine(db, slog.New(slog.DiscardHandler))
	const group = 32
	index, i := uint64(1), 0
	next := func() []command.Entry {
		entries := make([]command.Entry, group)
		for j := range entries {
			w := i % 64
			id := fmt.Sprintf("w%d-%d", w, i/64)
			m := &store.Machine{ID: id, Hostname: id, Arch: "x86_64", State: store.StateReady,
				Interfaces: []store.Interface{{MAC: fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", w, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))}}}
			cmd, err := command.Encode(PutMachineV2, Put[store.Machine]{Object: m, Time: ts0, By: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			entries[j] = command.Entry{Index: index, Data: cmd}
			i++
		}
		index++
		return entries
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		entries := next()
		b.StartTimer()
		results, err := sm.Apply(entries)
		if err != nil {
			b.Fatal(err)
		}
		if r := results[group-1].(Result); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
	b.ReportMetric(float64(b.N*group)/b.Elapsed().Seconds(), "writes/s")
}
