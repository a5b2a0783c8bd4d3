package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/pki"
	"github.com/outposthq/outpost/internal/seal"
)

// benchStore measures committed writes through Raft into the store, with
// fsync on, for concurrent writers on a 1-node and a 3-node cluster, for
// two shapes of write: a machine put (a random key plus its MAC index
// entry: the costly shape for a B+tree) and an event append (sequential
// keys: what a boot storm mostly writes).
func benchStore(ctx context.Context, log *slog.Logger, d time.Duration) error {
	// The nodes run in this process, so they collect garbage as it does:
	// as applianced does (its gcPercent), unless GOGC says otherwise.
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(appliancedGCPercent))
	}
	for _, nodes := range benchNodes {
		for _, kind := range []string{"machine", "event"} {
			if err := benchCommit(ctx, log, nodes, benchWriters, kind, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func benchCommit(ctx context.Context, log *slog.Logger, nodes, writers int, kind string, d time.Duration) error {
	write := putMachine
	if kind == "event" {
		write = recordEvent
	}
	dir, err := os.MkdirTemp("", "outpost-bench-store-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cluster, err := startCluster(ctx, log, dir, nodes)
	if err != nil {
		return err
	}
	defer cluster.close()
	leader := site.NewProposer(site.ProposerConfig{Log: cluster.nodes[0], Store: cluster.dbs[0]})

	var (
		mu   sync.Mutex
		lats []time.Duration
		errs int
	)
	before, err := readCost()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				start := time.Now()
				if err := write(ctx, leader, w, i); err != nil {
					mu.Lock()
					errs++
					mu.Unlock()
					continue
				}
				local = append(local, time.Since(start))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	after, err := readCost()
	if err != nil {
		return err
	}
	if errs > 0 {
		return fmt.Errorf("%d writes failed", errs)
	}
	slices.Sort(lats)
	rate := float64(len(lats)) / d.Seconds()
	p99 := lats[len(lats)*99/100]
	per := after.sub(before).per(len(lats))
	fmt.Printf("BENCH store.commit nodes=%d writers=%d rate=%.0f/s p99=%.2fms kind=%s writes=%d fsync=on cpu_us_per_write=%.1f allocs_per_write=%.0f alloc_bytes_per_write=%.0f gc_cycles=%d gc_percent=%d\n",
		nodes, writers, rate, float64(p99.Microseconds())/1000, kind, len(lats), per.cpuMicros, per.allocs, per.bytes, after.gcs-before.gcs, gcPercent())
	return nil
}

// cost is what the process has spent so far: CPU time (user and system,
// every node of the cluster, which runs in this process), heap
// allocations and GC cycles. Per write, it does not move with the load
// other processes put on the machine, as the rate does.
type cost struct {
	cpu           time.Duration
	allocs, bytes uint64
	gcs           uint32
}

func readCost() (cost, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cost{}, fmt.Errorf("getrusage: %w", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cost{cpu: cpu, allocs: ms.Mallocs, bytes: ms.TotalAlloc, gcs: ms.NumGC}, nil
}

func (c cost) sub(o cost) cost {
	return cost{cpu: c.cpu - o.cpu, allocs: c.allocs - o.allocs, bytes: c.bytes - o.bytes, gcs: c.gcs - o.gcs}
}

// perWrite is a cost divided by the writes it paid for.
type perWrite struct{ cpuMicros, allocs, bytes float64 }

func (c cost) per(writes int) perWrite {
	n := float64(max(writes, 1))
	return perWrite{cpuMicros: float64(c.cpu.Microseconds()) / n, allocs: float64(c.allocs) / n, bytes: float64(c.bytes) / n}
}

// putMachine writes a new machine, as the API does.
func putMachine(ctx context.Context, p *site.Proposer, w, i int) error {
	id := fmt.Sprintf("w%d-%d", w, i)
	m := &store.Machine{
		ID: id, Hostname: id, Arch: "x86_64", State: store.StateReady,
		Interfaces: []store.Interface{{MAC: fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", w, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))}},
	}
	_, err := p.PutMachine(ctx, m, 0)
	return err
}

// recordEvent records an event, as an agent's progress report does.
func recordEvent(ctx context.Context, p *site.Proposer, w, i int) error {
	_, err := p.RecordEvent(ctx, store.Event{MachineID: fmt.Sprintf("w%d", w), Kind: "action.progress", Message: fmt.Sprintf("image.write %d%%", i%100)})
	return err
}

type benchCluster struct {
	nodes []*cluster.Node
	dbs   []*store.DB
}

// startCluster starts n in-process nodes on loopback; nodes[0] leads.
func startCluster(ctx context.Context, log *slog.Logger, dir string, n int) (*benchCluster, error) {
	c := &benchCluster{}
	key, err := seal.Generate()
	if err != nil {
		return nil, err
	}
	ca, err := cluster.SiteCA(key)
	if err != nil {
		return nil, err
	}
	for i := range n {
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i))
		db, err := store.Open(filepath.Join(ndir, "store.db"))
		if err != nil {
			c.close()
			return nil, err
		}
		c.dbs = append(c.dbs, db)
		addr, err := freeAddr()
		if err != nil {
			c.close()
			return nil, err
		}
		node, err := openNode(ndir, fmt.Sprintf("n%d", i), addr, i == 0, ca, log, db)
		if err != nil {
			c.close()
			return nil, err
		}
		c.nodes = append(c.nodes, node)
		if i == 0 {
			if err := waitLeader(ctx, node); err != nil {
				c.close()
				return nil, err
			}
			continue
		}
		if err := node.JoinWith(ctx, c.nodes[0].Join, func() (*pki.Authority, error) { return ca, nil }); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// openNode opens one node with a key pair in dir.
func openNode(dir, id, addr string, bootstrap bool, ca *pki.Authority, log *slog.Logger, db *store.DB) (*cluster.Node, error) {
	ident, err := pki.LoadIdentity(dir, id)
	if err != nil {
		return nil, err
	}
	cfg := cluster.Config{ID: id, Dir: filepath.Join(dir, "raft"), BindAddr: addr,
		APIURL: "http://unused.invalid", Bootstrap: bootstrap, Identity: ident, Log: log}
	if bootstrap {
		cfg.CA = ca
	}
	return cluster.Open(cfg, db)
}

func waitLeader(ctx context.Context, n *cluster.Node) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for !n.IsLeader() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (c *benchCluster) close() {
	for _, n := range c.nodes {
		n.Close()
	}
	for _, db := range c.dbs {
		db.Close()
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// appliancedGCPercent is applianced's garbage collection target
// (appliance/cmd/applianced: gcPercent), which the store benchmark runs
// its in-process nodes with.
const appliancedGCPercent = 400

// benchNodes are the cluster sizes benchStore measures.
var benchNodes = []int{1, 3}

var benchWriters = 64

// gcPercent is the process's garbage collection target.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
