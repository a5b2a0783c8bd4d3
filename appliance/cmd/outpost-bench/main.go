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
	"strings"
	"time"
)

func main() {
	only := flag.String("run", "", "comma-separated benchmarks to run (default all): store")
	dur := flag.Duration("duration", 10*time.Second, "how long each load phase runs")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.IntVar(&benchWriters, "writers", benchWriters, "concurrent writers for store.commit")
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

	benches := []struct {
		name string
		run  func(ctx context.Context, log *slog.Logger, d time.Duration) error
	}{
		{"store", benchStore},
		{"tftp", benchTFTP},
		{"dhcp", benchDHCP},
		{"storm", benchStorm},
		{"provision", benchProvisionE2E},
		{"bmc", benchBMCCycle},
		{"sync", benchSync},
	}
	failed := false
	for _, b := range benches {
		if *only != "" && !strings.Contains(","+*only+",", ","+b.name+",") {
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
