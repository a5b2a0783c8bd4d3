package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// site3Nodes is the size of dhcp.nodes3's Outpost site.
const site3Nodes = 3

// benchDHCPSite3 is dhcp.dora for a 3-node Outpost site against one
// kea-dhcp4: every Outpost ACK is a lease committed through Raft on a
// quorum of the three (fsync on), Kea's a memfile write. The nodes, the
// perfdhcp client and Kea are hosts on one switch (a bridge in a
// namespace of its own): each node has its own namespace and the same
// interface, as on a site's boot network, and only the leader answers.
// Kea runs alone in the first node's namespace when its turn comes. Each
// is measured dhcpRuns times, interleaved (site, Kea, site, ...), a new
// site or Kea each time, searched as dhcp.dora searches; it prints
//
//	BENCH dhcp.dora nodes=3 outpost=<median>/s kea=<median>/s ratio_vs_kea=<median of outpost_i/kea_i> ratio_min=<smallest> spread_pct=<p> runs=3
//
// The duration flag does not apply.
func benchDHCPSite3(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	return runDHCPBench(ctx, log, "dhcp-nodes3", func(t lab.T, dir string, tools map[string]string, applianced string) {
		sw := newDHCPSwitch(t, site3Nodes)
		contenders := []dhcpContender{
			{"outpost", func(ctx context.Context, dir string) (dhcpServer, error) {
				return startDHCPSite(ctx, sw, dir, applianced)
			}},
			{"kea", func(_ context.Context, dir string) (dhcpServer, error) {
				return startKea(sw.nodes[0], sim.ServerIface, dir, tools["kea-dhcp4"])
			}},
		}
		load := dhcpLoad{ns: sw.client, iface: sim.ClientIface, perfdhcp: tools["perfdhcp"]}
		figures, err := dhcpRunsInterleaved(t.Context(), log, load, dir, contenders, dhcpRuns)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println(doraLine("nodes=3", figures))
	})
}

// dhcpSwitch is a boot network of hosts on one switch: the perfdhcp
// client at sim.ClientAddr and the nodes at site3Addr(i), each on its own
// namespace's sim.ClientIface or sim.ServerIface, all in sim.NetCIDR.
type dhcpSwitch struct {
	br     *lab.Netns // the switch: bridge br0
	client *lab.Netns
	nodes  []*lab.Netns
}

// site3Addr is the address of the site's i-th node (from 0).
func site3Addr(i int) string { return fmt.Sprintf("198.18.0.%d", 11+i) }

// newDHCPSwitch makes the switch, the client and n node hosts; they go
// away when t ends.
func newDHCPSwitch(t lab.T, n int) *dhcpSwitch {
	s := &dhcpSwitch{br: lab.NewNetns(t, "dhcp-switch")}
	s.br.Bridge("br0", "")
	s.client = s.attach(t, "client", sim.ClientIface, sim.ClientAddr)
	for i := range n {
		s.nodes = append(s.nodes, s.attach(t, fmt.Sprintf("n%d", i+1), sim.ServerIface, site3Addr(i)))
	}
	return s
}

// attach plugs a new host, namespace name, into the switch: its
// interface iface at addr in sim.NetCIDR.
func (s *dhcpSwitch) attach(t lab.T, name, iface, addr string) *lab.Netns {
	ns := lab.NewNetns(t, name)
	port := "p-" + name
	s.br.VethPair(t, ns, port, "", iface, addr+"/16")
	if _, err := s.br.Run(t.Context(), "ip", "link", "set", port, "master", "br0"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// dhcpSite is a site of applianced processes under test.
type dhcpSite struct {
	procs []*benchProc
}

func (s *dhcpSite) exited() bool {
	for _, p := range s.procs {
		if p.exited() {
			return true
		}
	}
	return false
}

// stop stops every node, the last joined first.
func (s *dhcpSite) stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
}

// logTail is that of a node that exited, else the first node's.
func (s *dhcpSite) logTail() string {
	for _, p := range s.procs {
		if p.exited() {
			return p.logTail()
		}
	}
	return s.procs[0].logTail()
}

// startDHCPSite starts a 3-node site on sw (startSite), each node with
// the benchmark's flags, and puts the benchmark's subnet.
func startDHCPSite(ctx context.Context, sw *dhcpSwitch, dir, bin string) (*dhcpSite, error) {
	s, _, err := startSite(ctx, sw, dir, bin, func(i int, ndir string) ([]string, error) {
		return outpostArgs(ndir, fmt.Sprintf("n%d", i+1), site3Site(i), "info")
	})
	if err != nil {
		return nil, err
	}
	return s, putSubnetIn(ctx, sw.nodes[0], s.procs[0], filepath.Join(dir, "n1", "data"), site3Site(0), time.Minute)
}

// site3Site is node i's view of the benchmark's subnet.
func site3Site(i int) outpostSite {
	return outpostSite{iface: sim.ServerIface, addr: site3Addr(i), subnet: benchSite.subnet}
}
