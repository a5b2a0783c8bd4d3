package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/store"
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
)

// benchDHCP measures full DORA exchanges per second from perfdhcp, over
// one veth pair between two namespaces (a sim.Net), against Outpost's
// applianced (single node: every ACK is a lease committed through Raft),
// kea-dhcp4 (memfile lease store, persisted) and dnsmasq, one after the
// other. For
// each it finds the highest offered rate at which at most 2.5 % of
// exchanges go unanswered: from 500/s it doubles until drops pass 2.5 %
// (or halves until they don't), then bisects, within about 60 s per
// server. It prints
// "BENCH dhcp.dora outpost=<n>/s kea=<n>/s dnsmasq=<n>/s ratio_vs_kea=<r>"
// and then, when QEMU and its iPXE NIC ROM are there, the seconds a BIOS
// VM's iPXE spends in DHCP against applianced:
// "BENCH ipxe.dhcp_phase seconds=<s>". The duration flag does not apply.
// The figures move with other load on the host; each server's search
// starts with the load average on stderr.
func benchDHCP(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	tools, err := dhcpTools()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outpost-bench-dhcp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	applianced, err := buildApplianced(ctx, dir)
	if err != nil {
		return err
	}
	r := lab.NewRunner(ctx, "bench-dhcp", discardLog{log})
	return r.Run(func(t lab.T) {
		if err := dhcpServers(ctx, log, sim.NewNet(t), dir, tools, applianced); err != nil {
			t.Fatal(err)
		}
	})
}

// dhcpServers measures each server in turn on bn, then iPXE's DHCP phase.
func dhcpServers(ctx context.Context, log *slog.Logger, bn *sim.Net, dir string, tools map[string]string, applianced string) error {
	servers := []struct {
		name  string
		start func(ctx context.Context, bn *sim.Net, dir string) (*benchProc, error)
	}{
		{"outpost", func(ctx context.Context, bn *sim.Net, dir string) (*benchProc, error) {
			return startOutpostDHCP(ctx, bn, dir, applianced, benchSite, "info")
		}},
		{"kea", func(_ context.Context, bn *sim.Net, dir string) (*benchProc, error) {
			return startKea(bn, dir, tools["kea-dhcp4"])
		}},
		{"dnsmasq", func(_ context.Context, bn *sim.Net, dir string) (*benchProc, error) {
			return startDnsmasq(bn, dir, tools["dnsmasq"])
		}},
	}
	best := map[string]float64{}
	for _, s := range servers {
		r, err := runDHCPServer(ctx, log, bn, dir, tools["perfdhcp"], s.name, s.start)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		best[s.name] = r
	}
	fmt.Printf("BENCH dhcp.dora outpost=%.0f/s kea=%.0f/s dnsmasq=%.0f/s ratio_vs_kea=%.2f\n",
		best["outpost"], best["kea"], best["dnsmasq"], best["outpost"]/best["kea"])

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

// runDHCPServer starts one server in its own directory, searches its
// rate and stops it.
func runDHCPServer(ctx context.Context, log *slog.Logger, bn *sim.Net, dir, perfdhcp, name string,
	start func(context.Context, *sim.Net, string) (*benchProc, error)) (float64, error) {
	sdir := filepath.Join(dir, name)
	if err := os.Mkdir(sdir, 0o755); err != nil {
		return 0, err
	}
	p, err := start(ctx, bn, sdir)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	if err := waitDHCP(ctx, bn, perfdhcp, p); err != nil {
		return 0, err
	}
	// Other work on the host moves these figures a lot: say how busy it is.
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(os.Stderr, "dhcp: %-8s starts; load average %s\n", name, strings.Join(strings.Fields(string(la))[:3], " "))
	}
	best, err := searchRate(ctx, bn, perfdhcp, name, p)
	if err != nil {
		return 0, err
	}
	log.Debug("dhcp bench done", "server", name, "rate", best)
	return best, nil
}

// searchRate finds the highest rate with drops within dhcpMaxDrops and
// returns the rate of completed exchanges achieved at it.
func searchRate(ctx context.Context, bn *sim.Net, perfdhcp, name string, p *benchProc) (float64, error) {
	deadline := time.Now().Add(dhcpBudget)
	var pass, fail, bisected int
	best := 0.0
	rate := dhcpStartRate
	for ctx.Err() == nil && time.Now().Add(dhcpProbe).Before(deadline) && rate >= 10 {
		res, err := runPerfdhcp(ctx, bn, perfdhcp, rate, dhcpProbe)
		if err != nil {
			return 0, err
		}
		if p.exited() {
			return 0, fmt.Errorf("exited at %d/s; log %s:\n%s", rate, p.log, lastLines(p.log, 20))
		}
		ok := res.drops() <= dhcpMaxDrops
		fmt.Fprintf(os.Stderr, "dhcp: %-8s offered %5d/s: %6.0f/s completed, %5.2f %% dropped%s\n",
			name, rate, res.achieved(), 100*res.drops(), map[bool]string{true: "", false: " (too many)"}[ok])
		if ok {
			pass = rate
			best = max(best, res.achieved())
		} else {
			fail = rate
		}
		switch {
		case pass > 0 && fail > 0:
			if bisected == dhcpBisections || fail-pass <= pass/20 {
				return best, ctx.Err()
			}
			bisected++
			rate = (pass + fail) / 2
		case fail == 0:
			rate *= 2
		default:
			rate /= 2
		}
	}
	if best == 0 && ctx.Err() == nil {
		return 0, fmt.Errorf("no rate down to %d/s had drops within %.1f %%", rate*2, 100*dhcpMaxDrops)
	}
	return best, ctx.Err()
}

// perfResult is what one perfdhcp run reports.
type perfResult struct {
	seconds   float64
	discovers int // DISCOVERs sent
	offers    int
	requests  int
	acks      int // ACKs received: completed exchanges
}

// drops is the share of exchanges begun that did not complete.
func (r perfResult) drops() float64 {
	if r.discovers == 0 {
		return 1
	}
	return 1 - float64(r.acks)/float64(r.discovers)
}

// achieved is completed exchanges per second of load.
func (r perfResult) achieved() float64 { return float64(r.acks) / r.seconds }

// runPerfdhcp offers rate exchanges per second for d from the client
// namespace, from dhcpClients MACs, and waits dhcpProbeWait for late
// answers.
func runPerfdhcp(ctx context.Context, bn *sim.Net, perfdhcp string, rate int, d time.Duration) (perfResult, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := bn.Client.CommandContext(ctx, perfdhcp,
		"-4", "-l", sim.ClientIface,
		"-r", strconv.Itoa(rate), "-R", strconv.Itoa(dhcpClients),
		"-p", strconv.Itoa(int(d/time.Second)),
		"-W", strconv.Itoa(int(dhcpProbeWait/time.Microsecond)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return perfResult{}, fmt.Errorf("perfdhcp -r %d: %w", rate, ctx.Err())
	}
	// perfdhcp exits 3 when it saw drops; its report is still complete.
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return perfResult{}, fmt.Errorf("perfdhcp -r %d: %v\n%s", rate, err, out)
	}
	res, err := parsePerfdhcp(string(out))
	if err != nil {
		return perfResult{}, fmt.Errorf("perfdhcp -r %d: %w\n%s", rate, err, out)
	}
	res.seconds = d.Seconds()
	return res, nil
}

// parsePerfdhcp reads perfdhcp -4's final report: the sent and received
// counts of its DISCOVER-OFFER and REQUEST-ACK sections.
func parsePerfdhcp(out string) (perfResult, error) {
	var r perfResult
	var section string
	found := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if s, ok := strings.CutPrefix(line, "***Statistics for: "); ok {
			section = strings.TrimSuffix(s, "***")
			continue
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok || (key != "sent packets" && key != "received packets") {
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil {
			return r, fmt.Errorf("%q: %w", line, err)
		}
		found[section+"/"+key] = true
		switch section + "/" + key {
		case "DISCOVER-OFFER/sent packets":
			r.discovers = n
		case "DISCOVER-OFFER/received packets":
			r.offers = n
		case "REQUEST-ACK/sent packets":
			r.requests = n
		case "REQUEST-ACK/received packets":
			r.acks = n
		}
	}
	if !found["DISCOVER-OFFER/sent packets"] || !found["REQUEST-ACK/received packets"] {
		return r, errors.New("no DISCOVER-OFFER and REQUEST-ACK statistics in perfdhcp's output")
	}
	return r, nil
}

// waitDHCP waits until the server completes exchanges (up to 30 s).
func waitDHCP(ctx context.Context, bn *sim.Net, perfdhcp string, p *benchProc) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := runPerfdhcp(ctx, bn, perfdhcp, 20, time.Second)
		if err != nil {
			return err
		}
		if res.acks > 0 {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("exited; log %s:\n%s", p.log, lastLines(p.log, 20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no DHCP answer after 30 s; log %s:\n%s", p.log, lastLines(p.log, 20))
		}
	}
}

// buildApplianced builds applianced from this module into dir.
func buildApplianced(ctx context.Context, dir string, flags ...string) (string, error) {
	return goBuild(ctx, dir, "applianced", "./appliance/cmd/applianced", flags...)
}

// outpostSite is where a benchmark's applianced serves DHCP: an
// interface of the server namespace, its address, and the subnet.
type outpostSite struct {
	iface, addr string
	subnet      store.Subnet
}

// benchSite is the DORA benchmark's: the veth to perfdhcp.
var benchSite = outpostSite{iface: sim.ServerIface, addr: sim.ServerAddr, subnet: store.Subnet{
	Name:         "bench",
	CIDR:         sim.NetCIDR,
	Pools:        []store.Range{{Start: dhcpPoolStart, End: dhcpPoolEnd}},
	LeaseSeconds: dhcpLeaseSecs,
	Discovery:    true,
}}

// startOutpostDHCP runs a single-node applianced serving DHCP on site's
// interface, and gives it site's subnet.
func startOutpostDHCP(ctx context.Context, bn *sim.Net, dir, bin string, site outpostSite, level string) (*benchProc, error) {
	data := filepath.Join(dir, "data")
	artifacts := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		return nil, err
	}
	p, err := startProc(bn.Server, filepath.Join(dir, "applianced.log"), nil, bin,
		"-id", "bench", "-data-dir", data,
		"-api-addr", site.addr+":7000", "-raft-addr", site.addr+":7001",
		"-dhcp-interface", site.iface, "-boot-addr", site.addr+":8080",
		"-artifact-dir", artifacts, "-log-level", level)
	if err != nil {
		return nil, err
	}
	if err := putSubnet(ctx, bn, p, filepath.Join(data, "admin.token"), site); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// putSubnet waits for the admin token and puts site's subnet (up to 60 s).
func putSubnet(ctx context.Context, bn *sim.Net, p *benchProc, tokenFile string, site outpostSite) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		raw, err := os.ReadFile(tokenFile)
		var tr *http.Transport
		if err == nil && strings.HasSuffix(string(raw), "\n") {
			// The API CA is written before the token.
			tr, err = client.PinnedTransport(client.Pin{CAFile: filepath.Join(filepath.Dir(tokenFile), "api-ca.pem")})
		}
		if tr != nil {
			tr.DialContext, tr.DisableKeepAlives = bn.Server.DialContext, true
			c := client.NewWithHTTP("https://"+site.addr+":7000", strings.TrimSpace(string(raw)), &http.Client{Timeout: 10 * time.Second, Transport: tr})
			if err = c.Put(ctx, "subnets", site.subnet.Name, site.subnet, nil); err == nil {
				return nil
			}
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("put subnet: %v; log %s:\n%s", err, p.log, lastLines(p.log, 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startKea runs kea-dhcp4 in the foreground with a memfile lease store
// persisted in dir and no control socket.
func startKea(bn *sim.Net, dir, bin string) (*benchProc, error) {
	conf := map[string]any{"Dhcp4": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{sim.ServerIface}},
		"lease-database":    map[string]any{"type": "memfile", "persist": true, "name": filepath.Join(dir, "leases4.csv")},
		"valid-lifetime":    dhcpLeaseSecs,
		"subnet4": []any{map[string]any{
			"id": 1, "subnet": sim.NetCIDR,
			"pools": []any{map[string]any{"pool": dhcpPoolStart + " - " + dhcpPoolEnd}},
		}},
		// Kea's default: INFO, one line per OFFER and per ACK.
		"loggers": []any{map[string]any{"name": "kea-dhcp4", "severity": "INFO", "output_options": []any{map[string]any{"output": "stdout"}}}},
	}}
	raw, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "kea-dhcp4.conf")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return nil, err
	}
	// Kea keeps its pid and lock files in system directories unless told.
	env := []string{"KEA_PIDFILE_DIR=" + dir, "KEA_LOCKFILE_DIR=" + dir}
	return startProc(bn.Server, filepath.Join(dir, "kea-dhcp4.log"), env, bin, "-c", path)
}

// startDnsmasq runs dnsmasq in the foreground as DHCP server only.
// --dhcp-lease-max lifts its default cap of 1,000 leases, which would
// NAK the rest of the run.
func startDnsmasq(bn *sim.Net, dir, bin string) (*benchProc, error) {
	return startProc(bn.Server, filepath.Join(dir, "dnsmasq.log"), nil, bin,
		"--no-daemon", "--conf-file=/dev/null", "--user=root",
		"--pid-file="+filepath.Join(dir, "dnsmasq.pid"),
		"--no-ping", "--port=0", "--interface="+sim.ServerIface, "--bind-interfaces",
		"--dhcp-range="+dhcpPoolStart+","+dhcpPoolEnd+",1h",
		"--dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases"),
		"--dhcp-authoritative", "--dhcp-lease-max=100000")
}
