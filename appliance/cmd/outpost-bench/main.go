// Command outpost-bench runs Outpost's performance benchmarks and prints
// one "BENCH name key=value ..." line per result (see `make bench`).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

type bench struct {
	name string
	run  func(ctx context.Context, log *slog.Logger, d time.Duration) error
}

// benches are every benchmark, in the order they run.
var benches = []bench{
	{"store", benchStore},
	{"tftp", benchTFTP},
	{"dhcp", benchDHCP},
	{"dhcp.cost", benchDHCPCost},
	{"dhcp.nodes3", benchDHCPSite3},
	{"dhcp.failover", benchDHCPFailover},
	{"raft.idle", benchRaftIdle},
	{"dhcp.relay", benchDHCPRelay},
	{"storm", benchStorm},
	{"trace.overhead", benchTraceOverhead},
	{"provision", benchProvisionE2E},
	{"trace.e2e", benchTraceE2E},
	{"bmc", benchBMCCycle},
	{"sync", benchSync},
	{"sync.sites", benchSyncSites},
	{"console", benchConsole},
	{"artifacts.serve", benchArtifactsServe},
	{"artifacts.fanout", benchArtifactsFanout},
	{"portal.bulk", benchPortalBulk},
	{"portal.fleet", benchPortalFleet},
	// soak is long (-soak-duration, an hour by default): `make soak`.
	{"soak", benchSoak},
}

func benchNames() []string {
	names := make([]string, len(benches))
	for i, b := range benches {
		names[i] = b.name
	}
	return names
}

// byNameOnly are the benchmarks that run only when -run names them, not
// in "all": the soak lasts an hour by default (`make soak`).
var byNameOnly = map[string]bool{"soak": true}

// selectBenches parses -run, a comma-separated list of benchmark names
// ("" is all of them but byNameOnly's); a name that is no benchmark is an
// error rather than a run that does nothing.
func selectBenches(list string) (map[string]bool, error) {
	selected := make(map[string]bool)
	if strings.TrimSpace(list) == "" {
		for _, b := range benches {
			if !byNameOnly[b.name] {
				selected[b.name] = true
			}
		}
		return selected, nil
	}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(benchNames(), name) {
			return nil, fmt.Errorf("-run: no benchmark %q (have %s)", name, strings.Join(benchNames(), ","))
		}
		selected[name] = true
	}
	return selected, nil
}

func main() {
	only := flag.String("run", "", "comma-separated benchmarks to run (default all): "+strings.Join(benchNames(), ","))
	dur := flag.Duration("duration", 10*time.Second, "how long each load phase runs")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.IntVar(&benchWriters, "writers", benchWriters, "concurrent writers for store.commit")
	flag.Int64Var(&serveBytes, "serve-bytes", serveBytes, "size of the image artifacts.serve serves")
	flag.IntVar(&serveClients, "serve-clients", serveClients, "concurrent downloads of artifacts.serve")
	flag.IntVar(&syncSites, "sync-sites", syncSites, "simulated sites sync.sites connects to central")
	flag.StringVar(&syncPprof, "sync-pprof", "", "directory where sync.sites writes centrald's CPU profile (while the orders are placed) and heap profile (once they are delivered); centrald is then built with -tags pprof")
	flag.Int64Var(&fanoutBytes, "fanout-bytes", fanoutBytes, "size of the image artifacts.fanout publishes")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "outpost-bench:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	selected, err := selectBenches(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "outpost-bench:", err)
		os.Exit(2)
	}
	failed := false
	for _, b := range benches {
		if !selected[b.name] {
			continue
		}
		if err := b.run(ctx, log, *dur); err != nil {
			fmt.Fprintf(os.Stderr, "outpost-bench: %s: %v\n", b.name, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
