package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/internal/tracing"
)

// traceOverheadRuns is how many storms trace.overhead runs each way.
const traceOverheadRuns = 3

// The storm trace.overhead runs under callgrind each way: its machines,
// one at a time, so that the count does not move with how the machines'
// requests happen to interleave (group commits of different sizes;
// callgrind runs one thread at a time, some fifty times slower, anyway),
// with garbage collection off (GOGC=off: the heap of 100 machines fits),
// so that the count is the program's own work, not how many collections
// happen to fall within the storm: with them, instr_pct ranged from
// -5.1 to 5.4 between runs; without, 4.8 and 4.9.
const (
	traceInstrMachines    = 100
	traceInstrConcurrency = 1
)

// benchTraceOverhead measures what tracing costs the appliance: the
// provisioning storm (benchStorm's, with its -storm-machines and
// -storm-concurrency) run with tracing off (OUTPOST_TRACING=off in
// applianced's environment) and on (the default), three times each,
// interleaved (off, on, off, on, ...) so that a change in the machine's
// load falls on both alike; each run a fresh applianced and namespaces.
// Then, as the CPU times move with the machine's other load, it counts
// applianced's instructions under callgrind over a storm of
// traceInstrMachines each way, which they do not. It prints
//
//	BENCH trace.overhead cpu_per_machine_ms_off=<ms> cpu_per_machine_ms_on=<ms> pct=<p> spread_pct_off=<p> spread_pct_on=<p> instr_per_machine_off=<n> instr_per_machine_on=<n> instr_pct=<p> runs=3
//
// where the CPU figures are the medians of applianced's CPU time per
// machine, pct is on over off less one in percent, each spread_pct is
// its runs' range over their median in percent, how far to trust pct,
// and instr_pct is the same comparison of instructions per machine (the
// goal: both at most 5). With tracing on, every workflow is of the trace
// of the API request that made it, so that the site records each
// machine's DHCP exchanges, boot fetches and agent requests, as for a
// workflow an order makes. Needs root and `make images`.
func benchTraceOverhead(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	n, par := *stormMachines, *stormConcurrency
	if n < 1 || n > stormMaxMachines || par < 1 {
		return fmt.Errorf("-storm-machines must be 1 to %d and -storm-concurrency at least 1", stormMaxMachines)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	root, err := stormModuleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outpost-bench-trace-overhead-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	art, err := sim.NewArtifacts(filepath.Join(root, "images", "out"), filepath.Join(dir, "artifacts"))
	if err != nil {
		return err
	}
	applianced, err := buildApplianced(ctx, dir, stormBuildFlags()...)
	if err != nil {
		return err
	}
	perMachine := map[string][]float64{} // "off", "on" -> ms per machine, per run
	for i := range traceOverheadRuns {
		for _, mode := range []string{"off", "on"} {
			ms, err := traceOverheadRun(ctx, log, filepath.Join(dir, fmt.Sprintf("%s-%d", mode, i)), applianced, art, mode, i+1, n, par)
			if err != nil {
				return fmt.Errorf("tracing %s, run %d: %w", mode, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "trace.overhead: run %d, tracing %s: %.2f ms of applianced's CPU per machine\n", i+1, mode, ms)
			perMachine[mode] = append(perMachine[mode], ms)
		}
	}
	instr := map[string]float64{}
	for _, mode := range []string{"off", "on"} {
		d := filepath.Join(dir, "callgrind-"+mode)
		cgDir := d
		if *stormPprof != "" {
			// Kept for callgrind_annotate.
			cgDir = filepath.Join(*stormPprof, "callgrind-tracing-"+mode)
		}
		if err := os.MkdirAll(cgDir, 0o755); err != nil {
			return err
		}
		res, err := traceOverheadStorm(ctx, log, d, applianced, art, mode, stormOpts{callgrind: cgDir, env: []string{"GOGC=off"}}, traceInstrMachines, traceInstrConcurrency)
		if err != nil {
			return fmt.Errorf("tracing %s, under callgrind: %w", mode, err)
		}
		instr[mode] = float64(res.instr) / traceInstrMachines
		fmt.Fprintf(os.Stderr, "trace.overhead: under callgrind, tracing %s: %.0f of applianced's instructions per machine\n", mode, instr[mode])
	}
	off, on := summarize(perMachine["off"]), summarize(perMachine["on"])
	fmt.Printf("BENCH trace.overhead cpu_per_machine_ms_off=%.2f cpu_per_machine_ms_on=%.2f pct=%.1f spread_pct_off=%.1f spread_pct_on=%.1f instr_per_machine_off=%.0f instr_per_machine_on=%.0f instr_pct=%.1f runs=%d\n",
		off.median, on.median, overheadPct(off.median, on.median), off.spreadPct, on.spreadPct,
		instr["off"], instr["on"], overheadPct(instr["off"], instr["on"]), traceOverheadRuns)
	return nil
}

// traceOverheadRun runs one storm with tracing mode ("off" or "on") in
// dir (the run-th) and returns applianced's CPU milliseconds per machine.
func traceOverheadRun(ctx context.Context, log *slog.Logger, dir, bin string, art *sim.Artifacts, mode string, run, n, par int) (float64, error) {
	res, err := traceOverheadStorm(ctx, log, dir, bin, art, mode, stormOpts{label: fmt.Sprintf("-tracing-%s-%d", mode, run)}, n, par)
	return float64(res.cpu.Microseconds()) / 1000 / float64(n), err
}

// traceOverheadStorm runs one storm of n machines with tracing mode
// ("off" or "on") in dir, its applianced as opts says; every machine
// must have provisioned.
func traceOverheadStorm(ctx context.Context, log *slog.Logger, dir, bin string, art *sim.Artifacts, mode string, opts stormOpts, n, par int) (stormResult, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return stormResult{}, err
	}
	if mode == "off" {
		opts.env = append(opts.env, tracing.Off+"=off")
	}
	var res stormResult
	r := lab.NewRunner(ctx, "bench-trace-overhead", discardLog{log})
	err := r.Run(func(t lab.T) {
		var err error
		if res, err = stormRun(ctx, log, sim.NewNet(t), dir, bin, opts, art, n, par); err != nil {
			t.Fatal(err)
		}
		if res.out.OK() != n {
			t.Fatalf("%d of %d machines failed; applianced's log: %s", n-res.out.OK(), n, keepLog(res.log))
		}
	})
	return res, err
}

// summary is the median of a benchmark's runs and their range over it,
// in percent.
type summary struct {
	median, spreadPct float64
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var m float64
	if len(s)%2 == 1 {
		m = s[len(s)/2]
	} else {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	out := summary{median: m}
	if m > 0 {
		out.spreadPct = (s[len(s)-1] - s[0]) / m * 100
	}
	return out
}

// overheadPct is how much more on costs than off, in percent (negative
// when on came out cheaper, within the noise).
func overheadPct(off, on float64) float64 {
	if off <= 0 {
		return 0
	}
	return (on/off - 1) * 100
}
