package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

const (
	// failoverRuns is how many times dhcp.failover kills a leader, each
	// time in a new site.
	failoverRuns = 3
	// failoverRate is perfdhcp's steady rate of new exchanges per second:
	// a reply every few milliseconds, well under a site's capacity, so
	// that a gap in the replies is the failover and not the load.
	failoverRate = 100
	// failoverBefore is how long the load runs before the kill, and
	// failoverAfter after it.
	failoverBefore = 4 * time.Second
	failoverAfter  = 8 * time.Second
)

// benchDHCPFailover measures how long a 3-node site's DHCP is silent
// when its leader dies. The site is dhcp.nodes3's (three applianced on
// one switch, only the leader answering). perfdhcp offers failoverRate
// new exchanges a second; after failoverBefore the leader is SIGKILLed,
// and the load goes on for failoverAfter. A packet socket beside
// perfdhcp stamps every OFFER and ACK as the kernel receives it; a run's
// silence is the longest gap between two of them from a second before
// the kill to the end of the load. Each run is a new site, the settings
// of failoverSettings taking turns; it prints, for each setting,
//
//	BENCH dhcp.failover nodes=3 setting=<name> silent_ms=<median> silent_ms_max=<largest> kill_to_answer_ms=<median> spread_pct=<p> runs=3
//
// (kill_to_answer_ms: from the SIGKILL to the first answer of another
// node; kill_to_elected_ms and kill_to_ready_ms: to when that node's log
// says it won its election, and that it is ready, its no-op applied).
// The duration flag does not apply.
func benchDHCPFailover(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	return runDHCPBench(ctx, log, "dhcp-failover", func(t lab.T, dir string, tools map[string]string, applianced string) {
		sw := newDHCPSwitch(t, site3Nodes)
		load := dhcpLoad{ns: sw.client, iface: sim.ClientIface, perfdhcp: tools["perfdhcp"]}
		runs := map[string][]failoverResult{}
		for i := range failoverRuns {
			for _, s := range failoverSettings {
				fmt.Fprintf(os.Stderr, "dhcp.failover: %s run %d, %s\n", s.name, i+1, loadAvg())
				runDir := filepath.Join(dir, fmt.Sprintf("%s-%d", s.name, i+1))
				bin, err := s.wrap(runDir, applianced)
				if err != nil {
					t.Fatal(err)
				}
				r, err := failoverRun(t.Context(), sw, load, runDir, bin)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(os.Stderr, "dhcp.failover: %s run %d: killed %s; silent %.0f ms, first answer %.0f ms after the kill, from %s; it won its election %.0f ms and was ready %.0f ms after the kill\n",
					s.name, i+1, r.killed, ms(r.silent), ms(r.firstAnswer), r.answeredBy, ms(r.elected), ms(r.ready))
				runs[s.name] = append(runs[s.name], r)
			}
		}
		for _, s := range failoverSettings {
			printFailover(s.name, runs[s.name])
		}
	})
}

// failoverSettings are the settings dhcp.failover compares, run by run.
var failoverSettings = []raftSetting{oldDefaults, newDefaults}

// printFailover prints a setting's BENCH line from its runs.
func printFailover(setting string, runs []failoverResult) {
	var silent, first, elected, ready []float64
	for _, r := range runs {
		silent = append(silent, ms(r.silent))
		first = append(first, ms(r.firstAnswer))
		elected = append(elected, ms(r.elected))
		ready = append(ready, ms(r.ready))
	}
	s := summarize(silent)
	fmt.Printf("BENCH dhcp.failover nodes=3 setting=%s silent_ms=%.0f silent_ms_max=%.0f kill_to_answer_ms=%.0f kill_to_elected_ms=%.0f kill_to_ready_ms=%.0f spread_pct=%.0f runs=%d\n",
		setting, s.median, slices.Max(silent), summarize(first).median, summarize(elected).median, summarize(ready).median, s.spreadPct, len(silent))
}

// failoverResult is one run of dhcp.failover.
type failoverResult struct {
	killed      string        // the leader's id
	silent      time.Duration // the longest gap between answers
	firstAnswer time.Duration // from the kill to another node's first answer
	answeredBy  string        // that node's address
	elected     time.Duration // from the kill to its "election won" line
	ready       time.Duration // from the kill to its "leading" line
}

// failoverRun starts a site under dir, loads it, kills its leader and
// reads the replies.
func failoverRun(ctx context.Context, sw *dhcpSwitch, load dhcpLoad, dir, applianced string) (failoverResult, error) {
	site, err := startDHCPSite(ctx, sw, dir, applianced)
	if err != nil {
		return failoverResult{}, err
	}
	defer site.stop()
	if err := waitDHCP(ctx, load, site, time.Minute); err != nil {
		return failoverResult{}, err
	}
	capt, err := captureReplies(sw.client, sim.ClientIface)
	if err != nil {
		return failoverResult{}, err
	}
	defer capt.close()
	loadDone := make(chan error, 1)
	go func() {
		d := failoverBefore + failoverAfter
		_, err := load.run(ctx, d+30*time.Second, "-r", strconv.Itoa(failoverRate), "-R", strconv.Itoa(dhcpClients),
			"-p", strconv.Itoa(int(d/time.Second)), "-W", strconv.Itoa(int(dhcpProbeWait/time.Microsecond)))
		loadDone <- err
	}()
	leader, err := killLeaderAfter(ctx, sw, site, filepath.Join(dir, "n1", "data"), failoverBefore)
	if err != nil {
		return failoverResult{}, err
	}
	if err := <-loadDone; err != nil {
		return failoverResult{}, err
	}
	r, err := readFailover(capt.stop(), leader)
	if err != nil {
		return r, err
	}
	for i := range site.procs {
		if site3Addr(i) == r.answeredBy {
			r.elected, r.ready, err = leaderLog(site.procs[i].log, leader.at)
		}
	}
	return r, err
}

// leaderLog reads, in a node's log, when after the kill it won an
// election and when it was ready, from the kill.
func leaderLog(path string, kill time.Time) (elected, ready time.Duration, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, perr := time.Parse(time.RFC3339Nano, ts)
		if !ok || perr != nil || at.Before(kill) {
			continue
		}
		switch {
		case elected == 0 && strings.Contains(rest, `msg="election won"`):
			elected = at.Sub(kill)
		case ready == 0 && strings.Contains(rest, "msg=leading "):
			ready = at.Sub(kill)
		}
	}
	if elected == 0 || ready == 0 {
		return 0, 0, fmt.Errorf("%s: no election won and leading after the kill", path)
	}
	return elected, ready, nil
}

// killedLeader is the node a run killed, and when.
type killedLeader struct {
	id   string
	addr string
	at   time.Time
}

// killLeaderAfter waits d, asks the first node which node leads and
// SIGKILLs that node's processes.
func killLeaderAfter(ctx context.Context, sw *dhcpSwitch, site *dhcpSite, data string, d time.Duration) (killedLeader, error) {
	api, _, _, err := waitNodeAPI(ctx, sw.nodes[0], site.procs[0], data, site3Addr(0))
	if err != nil {
		return killedLeader{}, err
	}
	time.Sleep(d)
	st, err := api.Cluster(ctx)
	if err != nil {
		return killedLeader{}, fmt.Errorf("which node leads: %w", err)
	}
	var i int
	if _, err := fmt.Sscanf(st.LeaderID, "n%d", &i); err != nil || i < 1 || i > len(site.procs) {
		return killedLeader{}, fmt.Errorf("leader %q is none of the site's nodes", st.LeaderID)
	}
	k := killedLeader{id: st.LeaderID, addr: site3Addr(i - 1), at: time.Now()}
	if err := syscall.Kill(-site.procs[i-1].cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return killedLeader{}, fmt.Errorf("kill %s: %w", st.LeaderID, err)
	}
	return k, nil
}

// readFailover finds, in the replies (in the order received), the
// longest gap between answers from a second before the kill on, and the
// first answer from another node than the one killed.
func readFailover(replies []reply, k killedLeader) (failoverResult, error) {
	r := failoverResult{killed: k.id}
	from := k.at.Add(-time.Second)
	var prev time.Time
	for _, p := range replies {
		if p.at.Before(from) {
			continue
		}
		if !prev.IsZero() {
			r.silent = max(r.silent, p.at.Sub(prev))
		}
		prev = p.at
		if r.answeredBy == "" && p.at.After(k.at) && p.from != k.addr {
			r.firstAnswer, r.answeredBy = p.at.Sub(k.at), p.from
		}
	}
	if prev.IsZero() || r.answeredBy == "" {
		return r, errors.New("no node answered after the leader was killed")
	}
	return r, nil
}

// loadAvg is the host's load average, for a run's line on stderr.
func loadAvg() string {
	la, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	return "load average " + strings.Join(strings.Fields(string(la))[:3], " ")
}

// reply is a DHCP answer a capture saw.
type reply struct {
	at   time.Time // when the kernel received it
	from string    // the sender's IPv4 address
	typ  dhcpv4.MessageType
}

// capture reads the DHCP answers (OFFER, ACK) arriving on an interface
// from a packet socket, each stamped by the kernel as it arrives: a
// reader the CPU load delays does not move the stamps.
type capture struct {
	fd   int
	done chan []reply
	quit atomic.Bool
}

// captureReplies starts capturing the IPv4 packets arriving on iface in
// ns.
func captureReplies(ns *lab.Netns, iface string) (*capture, error) {
	c := &capture{fd: -1, done: make(chan []reply, 1)}
	fd, err := openPacketSocket(ns, iface, func(fd int) error {
		return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
	if err != nil {
		return nil, err
	}
	c.fd = fd
	go c.read()
	return c, nil
}

// openPacketSocket opens a packet socket of the IPv4 packets iface in ns
// receives and sends (SOCK_DGRAM: each read is one IP packet), with a
// 4 MiB receive buffer and reads that time out every 100 ms; set, if
// not nil, sets more options.
func openPacketSocket(ns *lab.Netns, iface string, set func(fd int) error) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		proto := int(htons(syscall.ETH_P_IP))
		if fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto); err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(syscall.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind the packet socket to %s: %w", iface, err)
		}
		if set != nil {
			if err := set(fd); err != nil {
				return err
			}
		}
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20); err != nil {
			return err
		}
		tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
		return syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	})
	if err != nil && fd >= 0 {
		syscall.Close(fd)
	}
	return fd, err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) read() {
	var out []reply
	buf, oob := make([]byte, 2048), make([]byte, 256)
	for !c.quit.Load() {
		n, oobn, _, _, err := syscall.Recvmsg(c.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			break
		}
		if r, ok := parseReply(buf[:n], oob[:oobn]); ok {
			out = append(out, r)
		}
	}
	c.done <- out
}

// stop ends the capture and returns what it saw, in the order received.
func (c *capture) stop() []reply {
	c.quit.Store(true)
	out := <-c.done
	c.done <- nil
	return out
}

// close ends the capture if stop did not, and closes the socket.
func (c *capture) close() {
	c.stop()
	syscall.Close(c.fd)
}

// parseReply reads an IPv4 packet from a DHCP server's port 67 with its
// kernel time stamp; only OFFERs and ACKs count.
func parseReply(pkt, oob []byte) (reply, bool) {
	m, ok := dhcpAnswer(pkt)
	if !ok || (m.MessageType() != dhcpv4.MessageTypeOffer && m.MessageType() != dhcpv4.MessageTypeAck) {
		return reply{}, false
	}
	at, ok := kernelStamp(oob)
	if !ok {
		return reply{}, false
	}
	return reply{at: at, from: net.IP(pkt[12:16]).String(), typ: m.MessageType()}, true
}

// dhcpAnswer is the DHCP message in pkt, an IPv4 packet, if it is one a
// server (or a relay) sent: UDP from port 67.
func dhcpAnswer(pkt []byte) (*dhcpv4.DHCPv4, bool) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != syscall.IPPROTO_UDP {
		return nil, false
	}
	ihl := int(pkt[0]&0xf) * 4
	if len(pkt) < ihl+8 || binary.BigEndian.Uint16(pkt[ihl:]) != 67 {
		return nil, false
	}
	m, err := dhcpv4.FromBytes(pkt[ihl+8:])
	return m, err == nil
}

// kernelStamp is the SO_TIMESTAMPNS time in a packet's control messages.
func kernelStamp(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SO_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}
