package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/testwait"
)

// BenchmarkCommit measures the whole commit path of a machine put on one
// node, as the API makes it: the proposer, the group commit, the Raft log
// (fsync), the state machine and the store (fsync), with 64 writers.
// Per-op figures (ns/op, allocs/op) are per machine written.
func BenchmarkCommit(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	key, err := seal.Generate()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	db, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	node := apptest.OpenNode(b, key, cluster.Config{ID: "n1", Dir: filepath.Join(dir, "raft"), BindAddr: apptest.FreeAddr(b),
		APIURL: "http://127.0.0.1:1", Bootstrap: true, Log: log}, db)
	testwait.For(b, "a ready leader", 20*time.Second, node.IsReadyLeader)
	p := site.NewProposer(site.ProposerConfig{Log: node, Store: db})
	var writers atomic.Uint64
	b.SetParallelism(32) // 64 writers on 2 cores
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := writers.Add(1)
		for i := 0; pb.Next(); i++ {
			// Each writer's keys are its own sequence: the store sees
			// inserts at 64 places at once, as outpost-bench makes them.
			id := fmt.Sprintf("w%d-%d", w, i)
			m := &store.Machine{ID: id, Hostname: id, Arch: "x86_64", State: store.StateReady,
				Interfaces: []store.Interface{{MAC: fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", byte(w), byte(i>>24), byte(i>>16), byte(i>>8), byte(i))}}}
			if _, err := p.PutMachine(context.Background(), m, 0); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")

}
