package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// costPlan is how dhcp.cost loads a server: two runs of perfdhcp at one
// low rate, of two fixed counts.
type costPlan struct {
	rate         int // DORA exchanges begun per second
	small, large int // exchanges of the first run and of the second
	// wait is how long perfdhcp waits for an answer, and then for late
	// ones: a server under valgrind answers slowly, and a late answer
	// is still an exchange.
	wait time.Duration
	// idle is how long the server is left without load after the runs,
	// between two dumps: what it runs per second doing nothing, and so
	// how much of a DORA's figure at rate is idle work, goes to stderr.
	idle time.Duration
}

// defaultCostPlan is dhcp.cost's: 20 exchanges then 140, at 4 per
// second. Go's collector runs every so many exchanges, each cycle a few
// tens of millions of instructions under Outpost's heap: the 120 more
// exchanges of the second run spread that over enough of them that one
// cycle more or less moves the figure by a few percent (with 40, by a
// quarter).
var defaultCostPlan = costPlan{rate: 4, small: 20, large: 140, wait: 10 * time.Second, idle: 5 * time.Second}

const (
	// costStartup bounds a server's start under valgrind (about 50
	// times slower than without).
	costStartup = 5 * time.Minute
	// costMaxDrops is the most of a run's exchanges that may go
	// unanswered: the cost of an exchange that never completed is
	// counted, but not the exchange.
	costMaxDrops = 0.05
	// costAttempts is how many pairs of runs instrPerDORA tries before
	// it gives up on a server whose answers come too late.
	costAttempts = 3
)

// errCostDrops is costPerDORA's error for runs with too many exchanges
// unanswered.
var errCostDrops = errors.New("dhcp.cost: too many exchanges unanswered")

// benchDHCPCost counts the instructions Outpost's applianced (single
// node, fsync on, every ACK committed through Raft) and kea-dhcp4
// (memfile, INFO log) run per DORA exchange, under valgrind's callgrind:
// a figure that does not move with load, unlike dhcp.dora's rates. Each
// server runs under callgrind on a sim.Net; once it answers, callgrind
// dumps its count, perfdhcp does 20 exchanges at 4/s from distinct
// clients, callgrind dumps, perfdhcp does 140, callgrind dumps again
// (defaultCostPlan). Instructions per DORA are the difference of the two runs'
// counts over the difference of their ACKed exchanges: start-up, and
// what every perfdhcp run costs whatever its length (its wait for late
// answers), cancel out; the server's idle work between exchanges at 4/s
// does not. The kernel's work (sockets, fsync) is not counted. At 4/s
// each of Outpost's exchanges has a Raft entry to itself; on a host so
// busy that the server under valgrind lags behind, exchanges would share
// a group commit (one entry) and its figure come out lower: each run's
// entries go to stderr. A pair of runs
// with more than 5 % of exchanges unanswered is done again (three pairs
// at most). It prints
//
//	BENCH dhcp.cost outpost_instr_per_dora=<n> kea_instr_per_dora=<n>
//
// The duration flag does not apply.
func benchDHCPCost(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	if _, _, err := callgrindTools(); err != nil {
		return err
	}
	return runDHCPBench(ctx, log, "dhcp-cost", func(t lab.T, dir string, tools map[string]string, applianced string) {
		bn := sim.NewNet(t)
		load := dhcpLoad{ns: bn.Client, iface: sim.ClientIface, perfdhcp: tools["perfdhcp"]}
		cost := map[string]float64{}
		for _, c := range costContenders(bn, tools, applianced) {
			n, err := instrPerDORA(t.Context(), load, filepath.Join(dir, c.name), c, defaultCostPlan)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			cost[c.name] = n
		}
		fmt.Printf("BENCH dhcp.cost outpost_instr_per_dora=%.0f kea_instr_per_dora=%.0f\n", cost["outpost"], cost["kea"])
	})
}

// costContender is a server dhcp.cost starts under callgrind, with its
// state in dir, ready to be given load.
type costContender struct {
	name  string
	start func(ctx context.Context, dir string) (*costServer, error)
}

// costServer is a server under callgrind and, for Outpost, how to read
// its last Raft log index: how many entries a run appended (one per
// commit, a group commit being one) goes to stderr beside its count.
type costServer struct {
	*callgrindProc
	raftIndex func(ctx context.Context) (uint64, error) // nil for Kea
}

// costContenders are applianced and kea-dhcp4, configured as dhcp.dora
// configures them, on bn's server end.
func costContenders(bn *sim.Net, tools map[string]string, applianced string) []costContender {
	return []costContender{
		{"outpost", func(ctx context.Context, dir string) (*costServer, error) {
			args, err := outpostArgs(dir, "bench", benchSite, "info")
			if err != nil {
				return nil, err
			}
			p, err := startCallgrind(bn.Server, dir, filepath.Join(dir, "applianced.log"), callgrindGoEnv, applianced, args...)
			if err != nil {
				return nil, err
			}
			data := filepath.Join(dir, "data")
			if err := putSubnetIn(ctx, bn.Server, p, data, benchSite, costStartup); err != nil {
				p.stop()
				return nil, err
			}
			api, _, _, err := waitNodeAPI(ctx, bn.Server, p.benchProc, data, benchSite.addr)
			if err != nil {
				p.stop()
				return nil, err
			}
			return &costServer{callgrindProc: p, raftIndex: func(ctx context.Context) (uint64, error) {
				st, err := api.Cluster(ctx)
				return st.LastIndex, err
			}}, nil
		}},
		{"kea", func(_ context.Context, dir string) (*costServer, error) {
			conf, env, err := writeKeaConf(dir, sim.ServerIface)
			if err != nil {
				return nil, err
			}
			p, err := startCallgrind(bn.Server, dir, filepath.Join(dir, "kea-dhcp4.log"), env, tools["kea-dhcp4"], "-c", conf)
			if err != nil {
				return nil, err
			}
			return &costServer{callgrindProc: p}, nil
		}},
	}
}

// instrPerDORA starts c under callgrind in dir, waits for its first
// answer, and returns the instructions it ran per exchange, from plan's
// two runs.
func instrPerDORA(ctx context.Context, load dhcpLoad, dir string, c costContender, plan costPlan) (float64, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	p, err := c.start(ctx, dir)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	err = waitAnswers(ctx, p, costStartup, func(ctx context.Context) (perfResult, error) {
		return load.exchanges(ctx, 2, plan.rate, plan.wait)
	})
	if err != nil {
		return 0, err
	}
	var perDORA float64
	for attempt := 1; ; attempt++ {
		runs, err := costRuns(ctx, load, p, c.name, plan)
		if err != nil {
			return 0, err
		}
		if perDORA, err = costPerDORA(runs[0], runs[1]); err == nil {
			break
		}
		// A host busy enough that the server under valgrind answers
		// too late: the pair says nothing, another may.
		if !errors.Is(err, errCostDrops) || attempt == costAttempts {
			return 0, err
		}
		fmt.Fprintf(os.Stderr, "dhcp.cost: %-7s %v; again\n", c.name, err)
	}
	idle, err := idleRate(ctx, p.callgrindProc, plan.idle)
	if err != nil {
		return 0, err
	}
	if err := keepCallgrindOut(dir, c.name); err != nil {
		return 0, err
	}
	fmt.Fprintf(os.Stderr, "dhcp.cost: %-7s %.0f instructions per DORA, of which idle work at %d/s %.0f (%.0f per second idle)\n",
		c.name, perDORA, plan.rate, idle/float64(plan.rate), idle)
	return perDORA, nil
}

// dhcpCostOut is -dhcp-cost-out: where dhcp.cost keeps each server's
// callgrind dumps (callgrind_annotate reads them), which it otherwise
// removes with its run's directory.
var dhcpCostOut string

func init() {
	flag.StringVar(&dhcpCostOut, "dhcp-cost-out", "", "directory where dhcp.cost keeps each server's callgrind dumps (<server>/callgrind.out.<n>, and the server's log)")
}

// keepCallgrindOut copies the callgrind dumps and the log of the server
// name, run in dir, to -dhcp-cost-out/name, if the flag is set. The
// part of the second (larger) run is the one whose file says so on
// stderr; parts are numbered as dumped: before the runs, after each,
// then the two around the idle wait.
func keepCallgrindOut(dir, name string) error {
	if dhcpCostOut == "" {
		return nil
	}
	dst := filepath.Join(dhcpCostOut, name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("dhcp.cost: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "callgrind.out.*"))
	if err != nil {
		return fmt.Errorf("dhcp.cost: %w", err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range append(files, logs...) {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("dhcp.cost: keep %s: %w", f, err)
		}
	}
	fmt.Fprintf(os.Stderr, "dhcp.cost: %-7s callgrind dumps kept in %s (callgrind_annotate --inclusive=yes)\n", name, dst)
	return nil
}

// idleRate is the instructions per second p runs over d without load.
func idleRate(ctx context.Context, p *callgrindProc, d time.Duration) (float64, error) {
	before, err := p.dump(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	elapsed := time.Since(start)
	after, err := p.dump(ctx)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / elapsed.Seconds(), nil
}

// costRuns does plan's two runs against srv, each between two dumps.
// Outpost's Raft index is read after each dump, once in each run's
// window: what that costs cancels out in the difference.
func costRuns(ctx context.Context, load dhcpLoad, srv *costServer, name string, plan costPlan) ([2]costRun, error) {
	var runs [2]costRun
	before, err := srv.dump(ctx)
	if err != nil {
		return runs, err
	}
	index, err := srv.index(ctx)
	if err != nil {
		return runs, err
	}
	for i, n := range []int{plan.small, plan.large} {
		if runs[i].res, err = load.exchanges(ctx, n, plan.rate, plan.wait); err != nil {
			return runs, err
		}
		after, err := srv.dump(ctx)
		if err != nil {
			return runs, err
		}
		next, err := srv.index(ctx)
		if err != nil {
			return runs, err
		}
		runs[i].instr, before = after-before, after
		fmt.Fprintf(os.Stderr, "dhcp.cost: %-7s %3d of %3d exchanges ACKed, %d instructions",
			name, runs[i].res.acks, runs[i].res.discovers, runs[i].instr)
		if srv.raftIndex != nil {
			fmt.Fprintf(os.Stderr, ", %d Raft entries", next-index)
		}
		fmt.Fprintln(os.Stderr)
		index = next
	}
	return runs, nil
}

// index is the server's last Raft index, or 0 for one without Raft.
func (s *costServer) index(ctx context.Context) (uint64, error) {
	if s.raftIndex == nil {
		return 0, nil
	}
	return s.raftIndex(ctx)
}

// costRun is one perfdhcp run under callgrind: what perfdhcp reported and
// the instructions the server ran meanwhile.
type costRun struct {
	res   perfResult
	instr uint64
}

// costPerDORA is the difference of two runs' instructions over the
// difference of their ACKed exchanges; it refuses runs with too many
// exchanges unanswered, or whose counts do not grow with the exchanges.
func costPerDORA(small, large costRun) (float64, error) {
	for _, r := range []costRun{small, large} {
		if r.res.drops() > costMaxDrops {
			return 0, fmt.Errorf("%w: %d of %d exchanges ACKed (%.0f %% may go unanswered)",
				errCostDrops, r.res.acks, r.res.discovers, 100*costMaxDrops)
		}
	}
	if large.res.acks <= small.res.acks || large.instr <= small.instr {
		return 0, fmt.Errorf("dhcp.cost: %d exchanges cost %d instructions, %d cost %d: no more for more",
			small.res.acks, small.instr, large.res.acks, large.instr)
	}
	return float64(large.instr-small.instr) / float64(large.res.acks-small.res.acks), nil
}
