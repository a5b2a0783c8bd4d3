package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The provisioning storm's flags.
var (
	stormMachines = flag.Int("storm-machines", 1000,
		"simulated machines provision.storm provisions")
	stormConcurrency = flag.Int("storm-concurrency", 1000,
		"simulated machines of provision.storm in flight at once (a real storm is all of them)")
	stormPprof = flag.String("storm-pprof", "",
		"directory where provision.storm and trace.overhead write applianced's CPU profile of each storm (from the first DHCP packet to the last machine's end); applianced is then built with -tags pprof")
)

// stormPprofAddr is where applianced serves its profiles (-storm-pprof),
// on the loopback of its namespace.
const stormPprofAddr = "127.0.0.1:7002"

// stormBuildFlags are go build's flags for the storm's applianced.
func stormBuildFlags() []string {
	if *stormPprof == "" {
		return nil
	}
	return []string{"-tags", "pprof"}
}

// stormProfiler is the profiler of the storm's applianced in bn's server
// namespace (nil without -storm-pprof).
func stormProfiler(bn *sim.Net) *profiler {
	if *stormPprof == "" {
		return nil
	}
	return &profiler{name: "applianced", addr: stormPprofAddr, dir: *stormPprof,
		httpc: &http.Client{Transport: &http.Transport{DialContext: bn.Server.DialContext}}}
}

// The storm's site: applianced in the server namespace of a sim.Net, the
// simulated machines in its client namespace, behind a sim.Relay at
// sim.ClientAddr (giaddr).
const (
	stormAPIAddr  = sim.ServerAddr + ":7000"
	stormBootPort = 8080
	stormBootAddr = sim.ServerAddr + ":8080"
	stormTFTPAddr = sim.ServerAddr + ":69"

	stormTemplate  = labsite.TemplateName
	stormInstaller = "installer"
	stormImage     = "storm-os"

	// stormSetupParallel is how many API writes the setup has in flight.
	stormSetupParallel = 32
	// stormMaxMachines is what the subnet's pool holds, with room for
	// the relay.
	stormMaxMachines = 3800
)

// stormSubnet is the boot network's subnet: the relay's giaddr is in it,
// so every relayed request is served from its pool.
var stormSubnet = store.Subnet{
	Name:         "storm",
	CIDR:         "198.18.0.0/20",
	Pools:        []store.Range{{Start: "198.18.1.0", End: "198.18.15.250"}}, // 3,835 addresses
	LeaseSeconds: 3600,
}

// benchStorm provisions -storm-machines simulated machines at once (at
// most -storm-concurrency in flight) against one applianced, built from
// this module and run in a network namespace of its own (a sim.Net's
// server end, addresses in 198.18.0.0/15 only), with one workflow each
// from the end-to-end test's install template (wipe, write a 4 MiB
// gzip'ed OS image, write a file, reboot). Every machine walks the real
// protocols from the other namespace, as its firmware, iPXE and the
// installer's agent would (see sim.Env.Provision): DHCP through a relay,
// TFTP, the iPXE script, the installer's kernel and initrd, and the agent
// API. A machine is ok when its workflow succeeded and the appliance's
// record says provisioned. It prints
//
//	BENCH provision.storm machines=<n> ok=<n> failed=<n> p50=<s> p99=<s> appliance_cpu=<s>
//	BENCH provision.storm.cpu per_machine_ms=<ms>
//
// where p50 and p99 are over every machine, from its first DHCP packet to
// its workflow's end (a failed machine's to when it gave up; time spent
// waiting for a slot under -storm-concurrency is not counted), and
// appliance_cpu is the CPU time (user and system) applianced used from
// before the first DHCP packet to after the last machine's end. The
// machines' side runs on the same host, so the latencies include its
// competition for the CPUs; appliance_cpu is applianced's alone. What
// happened along the way (phases, retries, drops, warnings, failures)
// goes to stderr; when a machine failed, applianced's log is kept. The
// duration flag does not apply. Needs root and `make images`.
func benchStorm(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	n, par := *stormMachines, *stormConcurrency
	if n < 1 || n > stormMaxMachines || par < 1 {
		return fmt.Errorf("-storm-machines must be 1 to %d and -storm-concurrency at least 1", stormMaxMachines)
	}
	if *stormNodes != 1 && *stormNodes != site3Nodes {
		return fmt.Errorf("-storm-nodes must be 1 or %d, not %d", site3Nodes, *stormNodes)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	if _, err := lookTFTP("ip", "iproute2"); err != nil {
		return err
	}
	root, err := stormModuleRoot(ctx)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outpost-bench-storm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	images := filepath.Join(root, "images", "out")
	if *stormNodes == site3Nodes {
		applianced, err := buildApplianced(ctx, dir)
		if err != nil {
			return err
		}
		return lab.NewRunner(ctx, "bench-storm3", discardLog{log}).Run(func(t lab.T) {
			if err := stormSite3(ctx, log, t, dir, applianced, images, n, par); err != nil {
				t.Fatal(err)
			}
		})
	}
	art, err := sim.NewArtifacts(images, filepath.Join(dir, "artifacts"))
	if err != nil {
		return err
	}
	applianced, err := buildApplianced(ctx, dir, stormBuildFlags()...)
	if err != nil {
		return err
	}
	r := lab.NewRunner(ctx, "bench-storm", discardLog{log})
	return r.Run(func(t lab.T) {
		if err := stormSite(ctx, log, sim.NewNet(t), dir, applianced, art, n, par); err != nil {
			t.Fatal(err)
		}
	})
}

// stormSite starts applianced, sets the site up, runs the storm and
// prints its BENCH lines.
func stormSite(ctx context.Context, log *slog.Logger, bn *sim.Net, dir, bin string, art *sim.Artifacts, n, par int) error {
	res, err := stormRun(ctx, log, bn, dir, bin, stormOpts{}, art, n, par)
	if err != nil {
		return err
	}
	out, cpu, applog := res.out, res.cpu, res.log
	lat := out.Latency()
	fmt.Printf("BENCH provision.storm machines=%d ok=%d failed=%d p50=%.2f p99=%.2f appliance_cpu=%.2f\n",
		n, out.OK(), n-out.OK(), lat.P50.Seconds(), lat.P99.Seconds(), cpu.Seconds())
	fmt.Printf("BENCH provision.storm.cpu per_machine_ms=%.1f\n", float64(cpu.Microseconds())/1000/float64(n))
	if out.OK() != n {
		return fmt.Errorf("%d of %d machines failed (see above); applianced's log: %s", n-out.OK(), n, keepLog(applog))
	}
	return nil
}

// stormOpts vary a storm's applianced.
type stormOpts struct {
	env   []string // added to its environment
	label string   // ends its CPU profile's name (-storm-pprof)
	// callgrind, if set, is a directory: applianced runs under callgrind,
	// its files there, and the storm counts its instructions.
	callgrind string
}

// stormResult is what a storm measured.
type stormResult struct {
	out *sim.Outcome
	// cpu is applianced's CPU time and instr its instructions (under
	// callgrind only), from before the first DHCP packet to after the
	// last machine's end.
	cpu   time.Duration
	instr uint64
	log   string // applianced's log
}

// stormRun starts applianced with its data and log in dir, sets the site
// up and runs the storm, reporting on stderr.
func stormRun(ctx context.Context, log *slog.Logger, bn *sim.Net, dir, bin string, opts stormOpts, art *sim.Artifacts, n, par int) (stormResult, error) {
	var prof *profiler
	if opts.callgrind == "" {
		// Not under callgrind: its profiling signals keep callgrind
		// from taking callgrind_control's dump requests.
		prof = stormProfiler(bn)
	}
	opts.env = append(opts.env, prof.env()...)
	p, cg, api, err := startStormAppliance(ctx, bn, dir, bin, art.Dir, opts)
	if err != nil {
		return stormResult{}, err
	}
	defer p.stop()
	machines := sim.Machines(n)
	began := time.Now()
	if err := putStormSite(ctx, api, art, machines); err != nil {
		return stormResult{}, fmt.Errorf("set up the site: %w; log %s:\n%s", err, p.log, lastLines(p.log, 20))
	}
	fmt.Fprintf(os.Stderr, "storm: site set up (%d machines and workflows) in %.1f s\n", n, time.Since(began).Seconds())
	relay, err := sim.NewRelay(bn.Client, netip.MustParseAddr(sim.ClientAddr), netip.MustParseAddr(sim.ServerAddr))
	if err != nil {
		return stormResult{}, err
	}
	defer relay.Close()
	senv := &sim.Env{Netns: bn.Client, Relay: relay, Server: netip.MustParseAddr(sim.ServerAddr), BootPort: stormBootPort, Artifacts: art}
	if err := prof.startCPU(ctx); err != nil {
		return stormResult{}, err
	}
	res, err := runStorm(ctx, senv, p, cg, machines, par)
	if err != nil {
		return stormResult{}, err
	}
	if err := prof.stopCPU(ctx, opts.label); err != nil {
		return stormResult{}, err
	}
	if err := checkMachines(ctx, api, res.out); err != nil {
		return stormResult{}, err
	}
	stormReport(os.Stderr, res.out, senv.Stats(), res.cpu, bn.Client, []stormHost{{"applianced", bn.Server, stormAPIAddr,
		client.Pin{CAFile: filepath.Join(dir, "data", "api-ca.pem")}, p}})
	log.Debug("storm done", "machines", n, "wall", res.out.Wall)
	res.log = p.log
	return res, nil
}

// runStorm runs env's storm of machines, at most par at a time, printing
// its progress, and measures applianced (p; cg if it runs under
// callgrind) from before the first DHCP packet to after the last machine.
func runStorm(ctx context.Context, env *sim.Env, p *benchProc, cg *callgrindProc, machines []sim.Machine, par int) (stormResult, error) {
	pid := p.cmd.Process.Pid
	before, err := cpuSeconds(pid)
	if err != nil {
		return stormResult{}, err
	}
	var instrBefore, idlePerSec float64
	if cg != nil {
		if instrBefore, idlePerSec, err = idleInstructions(ctx, cg); err != nil {
			return stormResult{}, err
		}
	}
	// The machines share the host with applianced, and so does anything
	// else running: say how busy it is.
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(os.Stderr, "storm: starts; load average %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	began := time.Now()
	stopProgress := stormProgress(env, began, len(machines))
	out := env.Storm(ctx, machines, par)
	after, err := cpuSeconds(pid)
	stopProgress()
	switch {
	case ctx.Err() != nil:
		return stormResult{}, ctx.Err()
	case err != nil || p.exited():
		return stormResult{}, fmt.Errorf("applianced exited during the storm (%v); log %s:\n%s", err, p.log, lastLines(p.log, 20))
	}
	res := stormResult{out: out, cpu: time.Duration((after - before) * float64(time.Second))}
	if cg != nil {
		wall := time.Since(began).Seconds()
		instr, err := cg.dump(ctx)
		if err != nil {
			return stormResult{}, err
		}
		res.instr = uint64(max(0, float64(instr)-instrBefore-idlePerSec*wall))
	}
	return res, nil
}

// idleWindow is how long a storm under callgrind watches applianced
// idle, after idleSettle.
const (
	idleWindow = 10 * time.Second
	idleSettle = 5 * time.Second
)

// idleInstructions counts the instructions applianced runs idle, under
// callgrind, before the storm: its timers (Raft's, the span exporter's)
// run by the second, and callgrind stretches the storm's seconds some
// fifty times, so that the storm's count would hold fifty times the
// idle work a storm of that many machines holds without it. It returns
// the count at the storm's start and the idle rate, per second, to take
// off the storm's count for its duration.
func idleInstructions(ctx context.Context, cg *callgrindProc) (at, perSec float64, err error) {
	// First the set-up's own work ends: its spans are exported within a
	// second (tracing.Config.Batch), its commits applied.
	if err := sleepCtx(ctx, idleSettle); err != nil {
		return 0, 0, err
	}
	first, err := cg.dump(ctx)
	if err != nil {
		return 0, 0, err
	}
	began := time.Now()
	if err := sleepCtx(ctx, idleWindow); err != nil {
		return 0, 0, err
	}
	second, err := cg.dump(ctx)
	if err != nil {
		return 0, 0, err
	}
	perSec = float64(second-first) / time.Since(began).Seconds()
	fmt.Fprintf(os.Stderr, "storm: applianced idle under callgrind: %.0f instructions a second\n", perSec)
	return float64(second), perSec, nil
}

// stormProgress prints how many machines are in each phase every 10 s
// until the returned function is called.
func stormProgress(env *sim.Env, start time.Time, n int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			pr := env.Progress()
			var b strings.Builder
			fmt.Fprintf(&b, "storm: %5.0f s:", time.Since(start).Seconds())
			for ph := range sim.PhaseDone {
				fmt.Fprintf(&b, " %s %d,", ph, pr.InPhase[ph])
			}
			fmt.Fprintf(&b, " finished %d of %d (%d failed)", pr.Done, n, pr.Failed)
			fmt.Fprintln(os.Stderr, b.String())
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// keepLog copies applianced's log out of the benchmark's directory, which
// goes away, and returns where it is.
func keepLog(path string) string { return keepLogAs(path, "applianced") }

// keepLogAs keeps the log at path as that of name (keepLog).
func keepLogAs(path, name string) string {
	dst := filepath.Join(os.TempDir(), fmt.Sprintf("outpost-bench-storm-%d-%s.log", os.Getpid(), name))
	raw, err := os.ReadFile(path)
	if err == nil {
		err = os.WriteFile(dst, raw, 0o644)
	}
	if err != nil {
		return fmt.Sprintf("%s (not kept: %v)", path, err)
	}
	return dst
}

// stormModuleRoot is the directory of this module's go.mod.
func stormModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run from inside the outpost module (go env GOMOD: %q, %v)", gomod, err)
	}
	return filepath.Dir(gomod), nil
}

// startStormAppliance runs a single-node applianced serving DHCP, TFTP
// and boot HTTP on the server end of bn (env added to its environment),
// puts the storm's subnet (which waits for it to lead), and returns an
// admin client of its API.
func startStormAppliance(ctx context.Context, bn *sim.Net, dir, bin, artifacts string, opts stormOpts) (*benchProc, *callgrindProc, *client.Client, error) {
	data := filepath.Join(dir, "data")
	args := []string{"-id", "storm", "-data-dir", data,
		"-api-addr", stormAPIAddr, "-raft-addr", "127.0.0.1:7001",
		"-dhcp-interface", sim.ServerIface, "-boot-addr", stormBootAddr, "-tftp-addr", stormTFTPAddr,
		"-artifact-dir", artifacts, "-log-level", "info"}
	logPath := filepath.Join(dir, "applianced.log")
	var p *benchProc
	var cg *callgrindProc
	var err error
	if opts.callgrind != "" {
		if cg, err = startCallgrind(bn.Server, opts.callgrind, logPath, append(opts.env, callgrindGoEnv...), bin, args...); err == nil {
			p = cg.benchProc
		}
	} else {
		p, err = startProc(bn.Server, logPath, opts.env, bin, args...)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*benchProc, *callgrindProc, *client.Client, error) {
		p.stop()
		return nil, nil, nil, err
	}
	site := outpostSite{iface: sim.ServerIface, addr: sim.ServerAddr, subnet: stormSubnet}
	tokenFile := filepath.Join(data, "admin.token")
	if err := putSubnet(ctx, bn, p, tokenFile, site); err != nil {
		return fail(err)
	}
	// ip netns exec execs the program: by now the process is applianced
	// itself (or valgrind running it), whose CPU time the storm reads.
	want := "applianced"
	if cg != nil {
		want = "callgrind"
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.cmd.Process.Pid)); err != nil || !strings.HasPrefix(strings.TrimSpace(string(comm)), want) {
		return fail(fmt.Errorf("process %d is %q (%v), not %s", p.cmd.Process.Pid, strings.TrimSpace(string(comm)), err, want))
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return fail(err)
	}
	tr, err := client.PinnedTransport(client.Pin{CAFile: filepath.Join(filepath.Dir(tokenFile), "api-ca.pem")})
	if err != nil {
		return fail(err)
	}
	tr.DialContext, tr.MaxIdleConnsPerHost = bn.Server.DialContext, stormSetupParallel
	return p, cg, client.NewWithHTTP("https://"+stormAPIAddr, strings.TrimSpace(string(token)), &http.Client{Timeout: time.Minute, Transport: tr}), nil
}

// putStormSite stores the installer, the storm's OS image, the install
// template, and a machine and its workflow (wf-<id>) for each of machines
// (those stormSetupParallel at a time), as an operator would through the
// API. The site gives each workflow the trace of the request that made
// it (with tracing on), so that each machine's provision is traced, as
// one an order makes is (trace.overhead).
func putStormSite(ctx context.Context, api *client.Client, art *sim.Artifacts, machines []sim.Machine) error {
	objs := []store.Object{
		art.Installer(stormInstaller),
		art.OSImage(stormImage),
		labsite.InstallTemplate(),
	}
	for _, o := range objs {
		if err := api.Put(ctx, o.Kind()+"s", o.Key(), o, nil); err != nil {
			return fmt.Errorf("put %s %s: %w", o.Kind(), o.Key(), err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(stormSetupParallel)
	for _, m := range machines {
		g.Go(func() error {
			if err := api.Put(gctx, "machines", m.ID, labsite.Machine(m.ID, m.MAC.String()), nil); err != nil {
				return fmt.Errorf("put machine %s: %w", m.ID, err)
			}
			w := labsite.Workflow("wf-"+m.ID, m.ID, stormImage, m.ID)
			if err := api.Put(gctx, "workflows", w.ID, w, nil); err != nil {
				return fmt.Errorf("put workflow %s: %w", w.ID, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// checkMachines reads every machine from the API once the storm is over:
// a machine whose workflow succeeded but whose record is not provisioned
// is failed after all, and so are two given the same address.
func checkMachines(ctx context.Context, api *client.Client, out *sim.Outcome) error {
	var all []store.Machine
	if err := api.List(ctx, "machines", &all); err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	state := make(map[string]store.MachineState, len(all))
	for _, m := range all {
		state[m.ID] = m.State
	}
	for i := range out.Results {
		r := &out.Results[i]
		if r.Err == nil && state[r.ID] != store.StateProvisioned {
			r.Err = fmt.Errorf("workflow succeeded but machine %s is %q, not provisioned", r.ID, state[r.ID])
			r.Phase = sim.PhaseDone
		}
	}
	out.CheckAddresses()
	return nil
}

// sleepCtx waits d, or until ctx ends (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
