package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// The DHCP benchmark's pool, in its network's subnet (sim.NetCIDR), and
// its search.
const (
	dhcpPoolStart = "198.18.1.0"
	dhcpPoolEnd   = "198.18.255.250" // 65,275 addresses
	dhcpLeaseSecs = 3600

	// dhcpClients is perfdhcp's -R: as many distinct MACs as the pool
	// holds with room to spare. Leases last an hour and a search runs
	// well over 60,000 exchanges against a fast server, so more distinct
	// clients than addresses would exhaust the pool (every server would
	// then drop) rather than measure it.
	dhcpClients = 60000

	dhcpProbe      = 5 * time.Second // each probe's load phase
	dhcpProbeWait  = time.Second     // perfdhcp -W: collect late answers
	dhcpBudget     = 60 * time.Second
	dhcpStartRate  = 500
	dhcpMaxDrops   = 0.025 // highest share of exchanges not completed
	dhcpBisections = 3

	// dhcpRuns is how many times each server is measured, interleaved
	// with the others, so that load from elsewhere on the host falls on
	// all of them alike.
	dhcpRuns = 3
)

// benchDHCP measures full DORA exchanges per second from perfdhcp, over
// one veth pair between two namespaces (a sim.Net), against Outpost's
// applianced (single node: every ACK is a lease committed through Raft,
// fsync on), kea-dhcp4 (memfile lease store, persisted) and dnsmasq. Each
// server is measured dhcpRuns times, interleaved (Outpost, Kea, dnsmasq,
// Outpost, ...), each run with a fresh server. A run finds the highest
// offered rate at which at most 2.5 % of exchanges go unanswered: the
// first from 500/s, doubling until drops pass 2.5 % (or halving until
// they don't), the later ones from the rate that passed in the server's
// previous run, in steps of 25 %; then it bisects, within about 60 s per
// run. Each run's figure goes to stderr; it prints
//
//	BENCH dhcp.dora outpost=<median>/s kea=<median>/s dnsmasq=<median>/s ratio_vs_kea=<median of outpost_i/kea_i> ratio_min=<smallest outpost_i/kea_i> spread_pct=<p> runs=3
//
// (spread_pct: the largest deviation of one of Outpost's or Kea's runs
// from its median, in percent), then, when QEMU and its iPXE NIC ROM are
// there, the seconds a BIOS VM's iPXE spends in DHCP against applianced:
// "BENCH ipxe.dhcp_phase seconds=<s>". The duration flag does not apply.
// Each run starts with the load average on stderr.
func benchDHCP(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	return runDHCPBench(ctx, log, "dhcp", func(t lab.T, dir string, tools map[string]string, applianced string) {
		if err := dhcpServers(t.Context(), log, sim.NewNet(t), dir, tools, applianced); err != nil {
			t.Fatal(err)
		}
	})
}

// runDHCPBench is how every DHCP benchmark starts: it stops on SIGTERM or
// SIGHUP too, finds the servers and perfdhcp, builds applianced into a
// directory it removes at the end, and runs body in a lab runner whose
// namespaces and processes go away when body returns.
func runDHCPBench(ctx context.Context, log *slog.Logger, name string, body func(t lab.T, dir string, tools map[string]string, applianced string)) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	tools, err := dhcpTools()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outpost-bench-"+name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var flags []string
	if dhcpPprof != "" {
		flags = []string{"-tags", "pprof"}
	}
	applianced, err := buildApplianced(ctx, dir, flags...)
	if err != nil {
		return err
	}
	r := lab.NewRunner(ctx, "bench-"+name, discardLog{log})
	return r.Run(func(t lab.T) { body(t, dir, tools, applianced) })
}

// dhcpServers measures each server dhcpRuns times on bn, then iPXE's
// DHCP phase.
func dhcpServers(ctx context.Context, log *slog.Logger, bn *sim.Net, dir string, tools map[string]string, applianced string) error {
	contenders := []dhcpContender{
		{"outpost", func(ctx context.Context, dir string) (dhcpServer, error) {
			return startProfiledDHCP(ctx, bn, dir, applianced)
		}},
		{"kea", func(_ context.Context, dir string) (dhcpServer, error) {
			return startKea(bn.Server, sim.ServerIface, dir, tools["kea-dhcp4"])
		}},
		{"dnsmasq", func(_ context.Context, dir string) (dhcpServer, error) {
			return startDnsmasq(bn, dir, tools["dnsmasq"])
		}},
	}
	load := dhcpLoad{ns: bn.Client, iface: sim.ClientIface, perfdhcp: tools["perfdhcp"]}
	figures, err := dhcpRunsInterleaved(ctx, log, load, dir, contenders, dhcpRuns)
	if err != nil {
		return err
	}
	fmt.Println(doraLine("", figures))

	secs, err := ipxeDHCPPhase(ctx, log, bn, dir, applianced)
	switch {
	case errors.Is(err, errSkipped):
		fmt.Fprintf(os.Stderr, "outpost-bench: dhcp: ipxe.dhcp_phase skipped: %v\n", err)
	case err != nil:
		return fmt.Errorf("ipxe.dhcp_phase: %w", err)
	default:
		fmt.Printf("BENCH ipxe.dhcp_phase seconds=%.2f\n", secs)
	}
	return nil
}

// dhcpTools finds the programs the benchmark runs, by name.
func dhcpTools() (map[string]string, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (network namespaces)")
	}
	tools := map[string]string{}
	for bin, pkg := range map[string]string{"ip": "iproute2", "perfdhcp": "kea-admin", "kea-dhcp4": "kea-dhcp4-server", "dnsmasq": "dnsmasq"} {
		p, err := lookTFTP(bin, pkg)
		if err != nil {
			return nil, err
		}
		tools[bin] = p
	}
	return tools, nil
}

// dhcpContender is a server the benchmark measures: start runs a fresh
// one with its state in dir, ready to be given load.
type dhcpContender struct {
	name  string
	start func(ctx context.Context, dir string) (dhcpServer, error)
}

// dhcpRunsInterleaved measures each contender runs times, in turn
// (a, b, c, a, b, c, ...), each time a fresh server in a directory of its
// own under dir, and returns each one's figures by name, in run order.
// A contender's later searches start from the rate that passed in its
// previous run.
func dhcpRunsInterleaved(ctx context.Context, log *slog.Logger, load dhcpLoad, dir string, cs []dhcpContender, runs int) (map[string][]float64, error) {
	figures := map[string][]float64{}
	passed := map[string]int{}
	for i := range runs {
		for _, c := range cs {
			sdir := filepath.Join(dir, fmt.Sprintf("%s-%d", c.name, i+1))
			best, pass, err := runDHCPServer(ctx, log, load, sdir, c, nextSearch(passed[c.name]))
			if err != nil {
				return nil, fmt.Errorf("%s, run %d: %w", c.name, i+1, err)
			}
			passed[c.name] = pass
			figures[c.name] = append(figures[c.name], best)
			fmt.Fprintf(os.Stderr, "dhcp: run %d/%d %-8s %.0f/s\n", i+1, runs, c.name, best)
		}
	}
	return figures, nil
}

// runDHCPServer starts one server in sdir, searches its rate and stops
// it.
func runDHCPServer(ctx context.Context, log *slog.Logger, load dhcpLoad, sdir string, c dhcpContender, s rateSearch) (best float64, passed int, err error) {
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return 0, 0, err
	}
	srv, err := c.start(ctx, sdir)
	if err != nil {
		return 0, 0, err
	}
	defer srv.stop()
	if err := waitDHCP(ctx, load, srv, 30*time.Second); err != nil {
		return 0, 0, err
	}
	// Other work on the host moves these figures a lot: say how busy it is.
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(os.Stderr, "dhcp: %-8s starts; load average %s\n", c.name, strings.Join(strings.Fields(string(la))[:3], " "))
	}
	best, passed, err = searchRate(ctx, s, c.name, func(ctx context.Context, rate int) (perfResult, error) {
		res, err := load.probe(ctx, rate, dhcpProbe)
		if err == nil && srv.exited() {
			err = fmt.Errorf("exited at %d/s; %s", rate, srv.logTail())
		}
		return res, err
	})
	if err != nil {
		return 0, 0, err
	}
	log.Debug("dhcp bench done", "server", c.name, "rate", best)
	return best, passed, nil
}

// doraLine is the BENCH line of dhcp.dora's runs (figures by contender,
// run i of each against run i of the others): each contender's median,
// then Outpost against Kea. nodes is "" for one node, or "nodes=3".
func doraLine(nodes string, figures map[string][]float64) string {
	var b strings.Builder
	b.WriteString("BENCH dhcp.dora")
	if nodes != "" {
		b.WriteString(" " + nodes)
	}
	for _, name := range []string{"outpost", "kea", "dnsmasq"} {
		if xs, ok := figures[name]; ok {
			fmt.Fprintf(&b, " %s=%.0f/s", name, summarize(xs).median)
		}
	}
	ratio, ratioMin := pairedRatios(figures["outpost"], figures["kea"])
	fmt.Fprintf(&b, " ratio_vs_kea=%.2f ratio_min=%.2f spread_pct=%.1f runs=%d",
		ratio, ratioMin, maxDeviationPct(figures["outpost"], figures["kea"]), len(figures["outpost"]))
	return b.String()
}

// pairedRatios is the median and the smallest of a[i]/b[i] over the runs
// both have (a run with b[i] = 0 is left out).
func pairedRatios(a, b []float64) (median, smallest float64) {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return 0, 0
	}
	return summarize(rs).median, slices.Min(rs)
}

// maxDeviationPct is the largest deviation of a run from the median of
// its own series, in percent of that median, over every series.
func maxDeviationPct(series ...[]float64) float64 {
	var worst float64
	for _, xs := range series {
		m := summarize(xs).median
		if m <= 0 {
			continue
		}
		for _, x := range xs {
			worst = max(worst, math.Abs(x-m)/m*100)
		}
	}
	return worst
}

// dhcpPprof is -dhcp-pprof: where dhcp.dora keeps a CPU profile of
// applianced over each of its runs (built with -tags pprof then).
var dhcpPprof string

func init() {
	flag.StringVar(&dhcpPprof, "dhcp-pprof", "", "directory where dhcp.dora writes a CPU profile of applianced over each run (applianced is then built with -tags pprof)")
}

// dhcpPprofAddr is where a profiled applianced serves its profiles, in
// the server namespace.
const dhcpPprofAddr = "127.0.0.1:6061"

// profiledDHCP is dhcp.dora's applianced with, under -dhcp-pprof, a CPU
// profile from its start to its stop.
type profiledDHCP struct {
	*benchProc
	prof *profiler
	run  int
}

// dhcpProfiles counts the profiled runs, to name their files.
var dhcpProfiles int

// startProfiledDHCP starts dhcp.dora's applianced; under -dhcp-pprof it
// profiles the CPU until the server is stopped.
func startProfiledDHCP(ctx context.Context, bn *sim.Net, dir, applianced string) (dhcpServer, error) {
	if dhcpPprof == "" {
		return startOutpostDHCP(ctx, bn, dir, applianced, benchSite, "info")
	}
	prof := &profiler{name: "applianced", addr: dhcpPprofAddr, dir: dhcpPprof,
		httpc: &http.Client{Transport: &http.Transport{DialContext: bn.Server.DialContext}}}
	p, err := startOutpostDHCPEnv(ctx, bn, dir, applianced, benchSite, "info", prof.env())
	if err != nil {
		return nil, err
	}
	if err := prof.startCPU(ctx); err != nil {
		p.stop()
		return nil, err
	}
	dhcpProfiles++
	return &profiledDHCP{benchProc: p, prof: prof, run: dhcpProfiles}, nil
}

func (p *profiledDHCP) stop() {
	if err := p.prof.stopCPU(context.Background(), fmt.Sprintf("-dora%d", p.run)); err != nil {
		fmt.Fprintf(os.Stderr, "outpost-bench: dhcp: %v\n", err)
	}
	p.benchProc.stop()
}
