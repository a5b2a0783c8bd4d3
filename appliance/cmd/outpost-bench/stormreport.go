package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// stormReport prints on w what the storm met along the way: its wall
// time, each phase's latency, the retries, DHCP packets dropped, the
// warnings in applianced's log, and why machines failed.
//
// hosts are the site's nodes, client the machines' namespace.
func stormReport(w io.Writer, out *sim.Outcome, stats *sim.Stats, cpu time.Duration, client *lab.Netns, hosts []stormHost) {
	fmt.Fprintf(w, "storm: %d machines, at most %d at a time: %.1f s wall; applianced used %.2f s of CPU (%.0f %% of one core)\n",
		len(out.Results), out.Par, out.Wall.Seconds(), cpu.Seconds(), 100*cpu.Seconds()/out.Wall.Seconds())
	for ph := range sim.PhaseDone {
		if l := out.PhaseLatency(ph); l.N > 0 {
			fmt.Fprintf(w, "storm: %-5s p50 %6.2f s  p99 %6.2f s  max %6.2f s  (%d machines)\n", ph,
				l.P50.Seconds(), l.P99.Seconds(), l.Max.Seconds(), l.N)
		}
	}
	slowest := slices.MaxFunc(out.Results, func(a, b sim.Result) int { return cmp.Compare(a.Total, b.Total) })
	var phases []string
	for ph := range sim.PhaseDone {
		phases = append(phases, fmt.Sprintf("%s %.2f s", ph, slowest.Phases[ph].Seconds()))
	}
	fmt.Fprintf(w, "storm: slowest machine %s: %.2f s (%s)\n", slowest.ID, slowest.Total.Seconds(), strings.Join(phases, ", "))
	counts := stats.Counts()
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(w, "storm: %s: %d times\n", k, counts[k])
	}
	for _, h := range hosts {
		if h.p.exited() {
			fmt.Fprintf(w, "storm: %s: not running at the end\n", h.name)
		} else {
			fmt.Fprintf(w, "storm: %s dropped %s DHCP packets with every worker busy (outpost_dhcp_dropped_total)\n", h.name, dhcpDropped(h))
			fmt.Fprintf(w, "storm: %s's open UDP sockets: %s\n", h.name, udpSocketDrops(h.ns))
		}
		fmt.Fprintf(w, "storm: kernel counters in %s: %s\n", h.ns.Name, netCounters(h.ns))
	}
	fmt.Fprintf(w, "storm: kernel counters in %s: %s\n", client.Name, netCounters(client))
	for _, h := range hosts {
		logSummary(w, h.name, h.p.log)
	}
	failureSummary(w, out.Results)
}

// stormHost is an applianced of a storm's site.
type stormHost struct {
	name string // in the report
	ns   *lab.Netns
	api  string     // its API's host:port
	pin  client.Pin // its API's certificate
	p    *benchProc
}

// dhcpDropped reads outpost_dhcp_dropped_total from h's metrics.
func dhcpDropped(h stormHost) string {
	tr, err := client.PinnedTransport(h.pin)
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	tr.DialContext = h.ns.DialContext
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	resp, err := hc.Get("https://" + h.api + "/metrics")
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "outpost_dhcp_dropped_total "); ok {
			return v
		}
	}
	return "?"
}

// netCounters reads ns's kernel counters where a storm shows:
// UDP datagrams dropped for a full socket buffer; TCP segments
// retransmitted, by tail loss probes (which a CPU-starved receiver's late
// ACKs set off) and by timeouts; TCP connections dropped for a full
// accept queue.
func netCounters(ns *lab.Netns) string {
	out, err := ns.Command("cat", "/proc/net/snmp", "/proc/net/netstat").Output()
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	want := []string{"Udp:InDatagrams", "Udp:RcvbufErrors", "Tcp:RetransSegs",
		"TcpExt:TCPLossProbes", "TcpExt:TCPTimeouts", "TcpExt:ListenOverflows"}
	// Each group is a line of names and a line of values.
	names := map[string][]string{}
	var parts []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		group := f[0]
		if names[group] == nil {
			names[group] = f[1:]
			continue
		}
		for i, name := range names[group] {
			if i+1 < len(f) && slices.Contains(want, group+name) {
				parts = append(parts, strings.TrimSuffix(group, ":")+"."+name+"="+f[i+1])
			}
		}
	}
	return strings.Join(parts, " ")
}

// udpSocketDrops lists the open UDP sockets of ns that dropped
// datagrams for a full receive buffer (the drops column of
// /proc/net/udp), by local port.
func udpSocketDrops(ns *lab.Netns) string {
	out, err := ns.Command("cat", "/proc/net/udp").Output()
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	var parts []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 13 || f[0] == "sl" || f[len(f)-1] == "0" {
			continue
		}
		_, portHex, _ := strings.Cut(f[1], ":")
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("port %d dropped %s", port, f[len(f)-1]))
	}
	if len(parts) == 0 {
		return "none dropped"
	}
	return strings.Join(parts, ", ")
}

// slogLineRE picks level and message from a slog text line.
var slogLineRE = regexp.MustCompile(`level=(WARN|ERROR) msg=("(?:[^"\\]|\\.)*"|\S+)`)

// logSummary counts the warnings and errors of name's log by message.
func logSummary(w io.Writer, name, path string) {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(w, "storm: %s's log: %v\n", name, err)
		return
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m := slogLineRE.FindStringSubmatch(sc.Text()); m != nil {
			counts[m[1]+" "+m[2]]++
		}
	}
	if len(counts) == 0 {
		fmt.Fprintf(w, "storm: %s logged no warnings or errors\n", name)
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(w, "storm: %s logged %s: %d times\n", name, k, counts[k])
	}
}

// failureNoise is what differs between machines failing alike.
var failureNoise = regexp.MustCompile(`storm-\d+|([0-9a-f]{2}:){5}[0-9a-f]{2}|\d+\.\d+\.\d+\.\d+(:\d+)?|[wd][A-Za-z0-9_-]{43}\.\S+`)

// failureSummary prints why machines failed, alike failures together.
func failureSummary(w io.Writer, results []sim.Result) {
	type group struct {
		n       int
		phase   string
		example string
	}
	groups := map[string]*group{}
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		key := r.Phase.String() + ": " + failureNoise.ReplaceAllString(r.Err.Error(), "…")
		if groups[key] == nil {
			groups[key] = &group{phase: r.Phase.String(), example: r.Err.Error()}
		}
		groups[key].n++
	}
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		fmt.Fprintf(w, "storm: %d machines failed in phase %s, such as: %s\n", g.n, g.phase, g.example)
	}
}
