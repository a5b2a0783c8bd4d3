package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// The provisioning storm's flags.
var (
	stormMachines = flag.Int("storm-machines", 1000,
		"simulated machines provision.storm provisions")
	stormConcurrency = flag.Int("storm-concurrency", 1000,
		"simulated machines of provision.storm in flight at once (a real storm is all of them)")
)

// The storm's site: applianced in the server namespace of a dhcpNet, the
// load generator in its client namespace at dhcpClientAddr, which is also
// the DHCP relay's address (giaddr).
const (
	stormAPIAddr  = dhcpServerAddr + ":7000"
	stormBootPort = "8080"
	stormBootAddr = dhcpServerAddr + ":" + stormBootPort
	stormTFTPAddr = dhcpServerAddr + ":69"

	stormTemplate  = labsite.TemplateName
	stormInstaller = "installer"
	stormImage     = "storm-os"
	stormImageFile = "storm-os.raw.gz"
	stormImageRaw  = 4 << 20 // random bytes, so gzip does not shrink them

	// stormMachineLimit bounds one machine's walk, from its first DHCP
	// packet to its workflow's end.
	stormMachineLimit = 10 * time.Minute
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
// this module and run in a network namespace of its own (newDHCPNet's
// pair, addresses in 198.18.0.0/15 only), with one workflow each from
// the end-to-end test's install template (wipe, write a 4 MiB gzip'ed OS
// image, write a file, reboot). Every machine walks the real protocols
// from the other namespace, as its firmware, iPXE and the installer's
// agent would (see stormEnv.provision): DHCP through a relay, TFTP, the
// iPXE script, the installer's kernel and initrd, and the agent API. A
// machine is ok when its workflow succeeded and the appliance's record
// says provisioned. It prints
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
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces)")
	}
	ip, err := lookTFTP("ip", "iproute2")
	if err != nil {
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
	art, err := stormArtifacts(filepath.Join(root, "images", "out"), filepath.Join(dir, "artifacts"))
	if err != nil {
		return err
	}
	applianced, err := buildApplianced(ctx, dir)
	if err != nil {
		return err
	}
	bn, err := newDHCPNet(ip)
	if err != nil {
		return err
	}
	defer bn.close()
	return stormSite(ctx, log, bn, dir, applianced, art, n, par)
}

// stormSite starts applianced, sets the site up and runs the storm.
func stormSite(ctx context.Context, log *slog.Logger, bn *dhcpNet, dir, bin string, art *stormArt, n, par int) error {
	p, api, err := startStormAppliance(ctx, bn, dir, bin, art.dir)
	if err != nil {
		return err
	}
	defer p.stop()
	machines := stormMachineList(n)
	began := time.Now()
	if err := putStormSite(ctx, api, art, machines); err != nil {
		return fmt.Errorf("set up the site: %w; log %s:\n%s", err, p.log, lastLines(p.log, 20))
	}
	fmt.Fprintf(os.Stderr, "storm: site set up (%d machines and workflows) in %.1f s\n", n, time.Since(began).Seconds())
	env, err := newStormEnv(bn, art)
	if err != nil {
		return err
	}
	defer env.close()
	run, err := env.storm(ctx, p, machines, par)
	if err != nil {
		return err
	}
	if err := run.checkMachines(ctx, api, machines); err != nil {
		return err
	}
	run.report(os.Stderr, bn, p)
	log.Debug("storm done", "machines", n, "wall", run.wall)
	p50, p99 := run.percentiles()
	fmt.Printf("BENCH provision.storm machines=%d ok=%d failed=%d p50=%.2f p99=%.2f appliance_cpu=%.2f\n",
		n, run.ok(), n-run.ok(), p50.Seconds(), p99.Seconds(), run.cpu.Seconds())
	fmt.Printf("BENCH provision.storm.cpu per_machine_ms=%.1f\n", float64(run.cpu.Microseconds())/1000/float64(n))
	if run.ok() != n {
		return fmt.Errorf("%d of %d machines failed (see above); applianced's log: %s", n-run.ok(), n, keepLog(p.log))
	}
	return nil
}

// keepLog copies applianced's log out of the benchmark's directory, which
// goes away, and returns where it is.
func keepLog(path string) string {
	dst := filepath.Join(os.TempDir(), fmt.Sprintf("outpost-bench-storm-%d-applianced.log", os.Getpid()))
	if err := linkOrCopy(path, dst); err != nil {
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

// stormMachine is one simulated machine.
type stormMachine struct {
	id       string
	mac      net.HardwareAddr
	workflow string
}

// stormMachineList names n machines storm-0000... with locally
// administered MACs 02:00:<index>.
func stormMachineList(n int) []stormMachine {
	ms := make([]stormMachine, n)
	for i := range ms {
		id := fmt.Sprintf("storm-%04d", i)
		ms[i] = stormMachine{
			id:       id,
			mac:      net.HardwareAddr{0x02, 0x00, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)},
			workflow: "wf-" + id,
		}
	}
	return ms
}

// startStormAppliance runs a single-node applianced serving DHCP, TFTP
// and boot HTTP on the server end of bn, puts the storm's subnet (which
// waits for it to lead), and returns an admin client of its API.
func startStormAppliance(ctx context.Context, bn *dhcpNet, dir, bin, artifacts string) (*benchProc, *client.Client, error) {
	data := filepath.Join(dir, "data")
	p, err := bn.start(bn.server, filepath.Join(dir, "applianced.log"), nil, bin,
		"-id", "storm", "-data-dir", data,
		"-api-addr", stormAPIAddr, "-raft-addr", "127.0.0.1:7001",
		"-dhcp-interface", dhcpServerIface, "-boot-addr", stormBootAddr, "-tftp-addr", stormTFTPAddr,
		"-artifact-dir", artifacts, "-log-level", "info")
	if err != nil {
		return nil, nil, err
	}
	site := outpostSite{iface: dhcpServerIface, addr: dhcpServerAddr, subnet: stormSubnet}
	tokenFile := filepath.Join(data, "admin.token")
	if err := putSubnet(ctx, bn, p, tokenFile, site); err != nil {
		p.stop()
		return nil, nil, err
	}
	// ip netns exec execs the program: by now the process is applianced
	// itself, whose CPU time the storm reads.
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.cmd.Process.Pid)); err != nil || strings.TrimSpace(string(comm)) != "applianced" {
		p.stop()
		return nil, nil, fmt.Errorf("process %d is %q (%v), not applianced", p.cmd.Process.Pid, strings.TrimSpace(string(comm)), err)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		p.stop()
		return nil, nil, err
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: bn.dialServer, MaxIdleConnsPerHost: stormSetupParallel,
	}}
	return p, client.NewWithHTTP("http://"+stormAPIAddr, strings.TrimSpace(string(token)), hc), nil
}

// putStormSite stores the installer, the storm's OS image, the install
// template, and a machine and its workflow for each of machines (those
// stormSetupParallel at a time), as an operator would through the API.
func putStormSite(ctx context.Context, api *client.Client, art *stormArt, machines []stormMachine) error {
	objs := []store.Object{
		&store.Image{Name: stormInstaller, Type: store.ImageInstaller, Kernel: art.kernel, Initrd: art.initrd, Cmdline: "panic=10"},
		&store.Image{Name: stormImage, Type: store.ImageOS, File: stormImageFile, Format: "raw.gz", SHA256: art.imageSHA256, Size: uint64(art.imageSize)},
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
			if err := api.Put(gctx, "machines", m.id, labsite.Machine(m.id, m.mac.String()), nil); err != nil {
				return fmt.Errorf("put machine %s: %w", m.id, err)
			}
			w := labsite.Workflow(m.workflow, m.id, stormImage, m.id)
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
// is failed after all.
func (run *stormRun) checkMachines(ctx context.Context, api *client.Client, machines []stormMachine) error {
	var all []store.Machine
	if err := api.List(ctx, "machines", &all); err != nil {
		return fmt.Errorf("list machines: %w", err)
	}
	state := make(map[string]store.MachineState, len(all))
	for _, m := range all {
		state[m.ID] = m.State
	}
	for i, m := range machines {
		r := &run.results[i]
		if r.err == nil && state[m.id] != store.StateProvisioned {
			r.err = fmt.Errorf("workflow succeeded but machine %s is %q, not provisioned", m.id, state[m.id])
			r.phase = phaseDone
		}
	}
	run.checkAddresses(machines)
	return nil
}

// stormRun is a storm's outcome.
type stormRun struct {
	results []stormResult
	cpu     time.Duration // applianced's, during the storm
	wall    time.Duration
	par     int // machines in flight at most
	stats   *stormStats
}

func (run *stormRun) ok() int {
	n := 0
	for _, r := range run.results {
		if r.err == nil {
			n++
		}
	}
	return n
}

// percentiles returns the p50 and p99 of every machine's latency (nearest
// rank).
func (run *stormRun) percentiles() (p50, p99 time.Duration) {
	lat := make([]time.Duration, len(run.results))
	for i, r := range run.results {
		lat[i] = r.total
	}
	slices.Sort(lat)
	return nearestRank(lat, 0.50), nearestRank(lat, 0.99)
}

// stormStats counts what the machines met along the way.
type stormStats struct {
	mu     sync.Mutex
	counts map[string]int // by what happened: "retried <request>: <why>" and the like
}

func (s *stormStats) count(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[what]++
}
