package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/internal/pki"
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
	client *lab.Netns
	nodes  []*lab.Netns
}

// site3Addr is the address of the site's i-th node (from 0).
func site3Addr(i int) string { return fmt.Sprintf("198.18.0.%d", 11+i) }

// newDHCPSwitch makes the switch, the client and n node hosts; they go
// away when t ends.
func newDHCPSwitch(t lab.T, n int) *dhcpSwitch {
	sw := lab.NewNetns(t, "dhcp-switch")
	sw.Bridge("br0", "")
	attach := func(name, iface, addr string) *lab.Netns {
		ns := lab.NewNetns(t, name)
		port := "p-" + name
		sw.VethPair(t, ns, port, "", iface, addr+"/16")
		if _, err := sw.Run(t.Context(), "ip", "link", "set", port, "master", "br0"); err != nil {
			t.Fatal(err)
		}
		return ns
	}
	s := &dhcpSwitch{client: attach("client", sim.ClientIface, sim.ClientAddr)}
	for i := range n {
		s.nodes = append(s.nodes, attach(fmt.Sprintf("n%d", i+1), sim.ServerIface, site3Addr(i)))
	}
	return s
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

// startDHCPSite starts one applianced per node host of sw, with its state
// under dir: the first bootstraps the site, the others join it by its
// API CA's fingerprint and admin token. Once every node sees the same
// leader and three voters, it puts the benchmark's subnet.
func startDHCPSite(ctx context.Context, sw *dhcpSwitch, dir, bin string) (_ *dhcpSite, err error) {
	s := &dhcpSite{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	var api *client.Client // the first node's
	var join []string      // what the others need to join it
	var joinEnv []string
	for i, ns := range sw.nodes {
		id, ndir := fmt.Sprintf("n%d", i+1), filepath.Join(dir, fmt.Sprintf("n%d", i+1))
		args, err := outpostArgs(ndir, id, site3Site(i), "info")
		if err != nil {
			return nil, err
		}
		p, err := startProc(ns, filepath.Join(ndir, "applianced.log"), joinEnv, bin, append(args, join...)...)
		if err != nil {
			return nil, err
		}
		s.procs = append(s.procs, p)
		if i > 0 {
			continue
		}
		var token, fp string
		if api, token, fp, err = waitNodeAPI(ctx, ns, p, filepath.Join(ndir, "data"), site3Addr(0)); err != nil {
			return nil, err
		}
		join = []string{"-join", "https://" + site3Addr(0) + ":7000", "-join-ca-fingerprint", fp}
		joinEnv = []string{"OUTPOST_JOIN_TOKEN=" + token}
	}
	if err := pollEvery(ctx, 200*time.Millisecond, 2*time.Minute, func() error { return siteFormed(ctx, api, s) }); err != nil {
		return nil, fmt.Errorf("the site: %w; %s", err, s.logTail())
	}
	return s, putSubnetIn(ctx, sw.nodes[0], s.procs[0], filepath.Join(dir, "n1", "data"), site3Site(0), time.Minute)
}

// site3Site is node i's view of the benchmark's subnet.
func site3Site(i int) outpostSite {
	return outpostSite{iface: sim.ServerIface, addr: site3Addr(i), subnet: benchSite.subnet}
}

// waitNodeAPI waits (up to a minute) for a bootstrapping node's admin
// token and API CA in data, and returns a client of its API at addr
// (dialled from ns), the token and the CA's fingerprint.
func waitNodeAPI(ctx context.Context, ns *lab.Netns, p *benchProc, data, addr string) (api *client.Client, token, fp string, err error) {
	err = pollEvery(ctx, 100*time.Millisecond, time.Minute, func() error {
		if p.exited() {
			return errors.New("exited")
		}
		raw, err := os.ReadFile(filepath.Join(data, "admin.token"))
		if err != nil || !strings.HasSuffix(string(raw), "\n") {
			return fmt.Errorf("no admin token yet (%v)", err)
		}
		token = strings.TrimSpace(string(raw))
		// The API CA is written before the token.
		pem, err := os.ReadFile(filepath.Join(data, "api-ca.pem"))
		if err != nil {
			return err
		}
		fp, err = pki.PEMFingerprint(pem)
		return err
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("node API: %w; %s", err, p.logTail())
	}
	tr, err := client.PinnedTransport(client.Pin{Fingerprint: fp})
	if err != nil {
		return nil, "", "", err
	}
	tr.DialContext = ns.DialContext
	return client.NewWithHTTP("https://"+addr+":7000", token, &http.Client{Timeout: 10 * time.Second, Transport: tr}), token, fp, nil
}

// siteFormed says why the site is not formed yet (a leader and every
// node a voter, as the first node sees it), or nil.
func siteFormed(ctx context.Context, api *client.Client, s *dhcpSite) error {
	if s.exited() {
		return errors.New("a node exited")
	}
	st, err := api.Cluster(ctx)
	if err != nil {
		return err
	}
	voters := 0
	for _, m := range st.Members {
		if m.Suffrage == "Voter" {
			voters++
		}
	}
	if st.LeaderID == "" || voters != len(s.procs) {
		return fmt.Errorf("leader %q, %d voters of %d nodes", st.LeaderID, voters, len(s.procs))
	}
	return nil
}
