package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
)

// soakSiteNodes is the size of the soak's site.
var soakSiteNodes = flag.Int("soak-site-nodes", 3,
	"applianced nodes of the soak's site, one Raft cluster (1 or 3); site.kill SIGKILLs its leader")

// soakSite is the soak's site: applianced nodes on one boot network (a
// switch, as the storm's 3-node site: newDHCPSwitch and startSite),
// joined as one Raft cluster, each syncing with central through one
// fault proxy per central node (its WAN); the BMCs are a host of their
// own on the same network. Its API client follows the leader (the
// checks read the leader: a follower may read stale). A node SIGKILLed
// starts again on its data.
type soakSite struct {
	sw    *dhcpSwitch
	bmc   *lab.Netns // the BMCs' host, at soakBMCAddr
	dir   string
	bins  soakBins
	auth  siteAuth
	nodes []*soakSiteNode
	api   *client.Client // the leader's API (leaderDial)

	leaderIdx atomic.Int32 // the node leaderDial dials
	mu        sync.Mutex
	down      []*soakSiteNode // killed by kill, started again by start
}

// soakSiteNode is one applianced of the site; its incarnation counts
// its starts (a restarted process is sampled as a new one).
type soakSiteNode struct {
	id   string
	ns   *lab.Netns
	addr string // its API's host:port
	dir  string
	args []string
	env  []string
	wan  []*lab.FaultProxy
	api  *client.Client
	http *http.Client
	// clockFile is the offset file its lab clock reads (soakClockEnv,
	// for clock.step).
	clockFile string

	mu          sync.Mutex
	bin         string
	proc        *benchProc
	incarnation int
}

// soakSiteID is the site's id at central; soakBMCAddr the BMCs' host.
const (
	soakSiteID  = "soak"
	soakBMCAddr = "198.18.0.5"
)

// startSoakSite creates the site at central, starts n applianced of
// bins' old release (startSite: the first bootstraps, the others join),
// each syncing with central through its own fault proxies, and puts the
// subnet through the leader.
func startSoakSite(ctx context.Context, t lab.T, n int, dir string, bins soakBins, art *sim.Artifacts, cen *soakCentral) (*soakSite, error) {
	var created struct {
		Credential string `json:"credential"`
	}
	if err := cen.do(ctx, time.Minute, "POST", "/v1/sites", map[string]string{"id": soakSiteID, "name": soakSiteID}, &created); err != nil {
		return nil, fmt.Errorf("create the site at central: %w", err)
	}
	credFile := filepath.Join(dir, "site.credential")
	if err := os.WriteFile(credFile, []byte(created.Credential+"\n"), 0o600); err != nil {
		return nil, err
	}
	s := &soakSite{sw: newDHCPSwitch(t, n), dir: dir, bins: bins}
	s.bmc = s.sw.attach(t, "bmcs", "eth0", soakBMCAddr)
	for i, ns := range s.sw.nodes {
		nd := &soakSiteNode{id: fmt.Sprintf("n%d", i+1), ns: ns, addr: site3Addr(i) + ":7000",
			dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), bin: bins.oldApplianced}
		var urls []string
		for _, addr := range cen.addrs() {
			p := lab.StartFaultProxyIn(t, ns, "127.0.0.1:0", addr)
			nd.wan = append(nd.wan, p)
			urls = append(urls, "http://"+p.Addr)
		}
		nd.args = []string{"-central-url", strings.Join(urls, ","), "-insecure-central", // a lab on loopback
			"-site-id", soakSiteID, "-site-credential-file", credFile}
		s.nodes = append(s.nodes, nd)
	}
	nodeBins := make([]string, len(s.nodes))
	envs := make([][]string, len(s.nodes))
	for i, nd := range s.nodes {
		nodeBins[i] = nd.bin
		soakNodeFS(t, filepath.Join(nd.dir, "data"))     // for disk.full (soak_disk.go)
		nd.clockFile, envs[i] = soakClockEnv(dir, nd.id) // for clock.step (soak_clock.go)
		nd.env = envs[i]
	}
	procs, auth, err := startSiteOf(ctx, s.sw, dir, nodeBins, envs, func(i int, ndir string) ([]string, error) {
		args, err := stormNodeArgs(art, i, ndir)
		if err != nil {
			return nil, err
		}
		s.nodes[i].args = append(args, s.nodes[i].args...)
		return s.nodes[i].args, nil
	})
	if err != nil {
		return nil, err
	}
	s.auth = auth
	join := []string{"-join", "https://" + s.nodes[0].addr, "-join-ca-fingerprint", auth.fp}
	for i, nd := range s.nodes {
		nd.proc, nd.incarnation = procs.procs[i], 1
		if i > 0 { // startSite's join, for a start on its data
			nd.args, nd.env = append(nd.args, join...), append(nd.env, "OUTPOST_JOIN_TOKEN="+auth.token)
		}
		if nd.http, err = s.httpClient(nd.ns.DialContext, false); err != nil {
			return nil, err
		}
		nd.api = client.NewWithHTTP("https://"+nd.addr, auth.token, nd.http)
	}
	hc, err := s.httpClient(s.leaderDial, true)
	if err != nil {
		return nil, err
	}
	s.api = client.NewWithHTTP("https://"+s.nodes[0].addr, auth.token, hc)
	go s.trackLeader(t.Context())
	err = pollEvery(ctx, time.Second, 2*time.Minute, func() error {
		return s.api.Put(ctx, "subnets", stormSubnet.Name, stormSubnet, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("put the subnet: %w", err)
	}
	return s, nil
}

// httpClient is an HTTP client of the site's API through dial; a
// client following the leader keeps no connection, so that each request
// goes to the node leading when it is sent.
func (s *soakSite) httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), once bool) (*http.Client, error) {
	tr, err := client.PinnedTransport(client.Pin{Fingerprint: s.auth.fp})
	if err != nil {
		return nil, err
	}
	tr.DialContext, tr.MaxIdleConnsPerHost, tr.DisableKeepAlives = dial, 16, once
	return &http.Client{Timeout: 30 * time.Second, Transport: tr}, nil
}

// leaderDial dials the API of the node trackLeader last saw leading.
func (s *soakSite) leaderDial(ctx context.Context, network, _ string) (net.Conn, error) {
	nd := s.nodes[s.leaderIdx.Load()]
	return nd.ns.DialContext(ctx, network, nd.addr)
}

// trackLeader asks the nodes every second which leads, until ctx ends.
func (s *soakSite) trackLeader(ctx context.Context) {
	for sleepCtx(ctx, time.Second) == nil {
		if i, err := s.leaderIndex(ctx); err == nil {
			s.leaderIdx.Store(int32(i))
		}
	}
}

// leaderIndex is the index of the node that says it leads.
func (s *soakSite) leaderIndex(ctx context.Context) (int, error) {
	for i, nd := range s.nodes {
		if p, _ := nd.process(); p.exited() {
			continue
		}
		if siteNodeLeads(ctx, nd) {
			return i, nil
		}
	}
	return 0, errors.New("no node of the site says it leads")
}

// leader waits (up to a minute) for a node to lead and returns its id.
func (s *soakSite) leader(ctx context.Context) (string, error) {
	var id string
	err := pollEvery(ctx, 250*time.Millisecond, time.Minute, func() error {
		i, err := s.leaderIndex(ctx)
		if err == nil {
			id = s.nodes[i].id
			s.leaderIdx.Store(int32(i))
		}
		return err
	})
	return id, err
}

// kill SIGKILLs the site's leader's process group; start starts it
// again on its data.
func (s *soakSite) kill() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	i, err := s.leaderIndex(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "soak: site.kill: %v; killing n1\n", err)
	}
	nd := s.nodes[i]
	fmt.Fprintf(os.Stderr, "soak: site.kill: SIGKILL the leader %s\n", nd.id)
	p, _ := nd.process()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	s.mu.Lock()
	s.down = append(s.down, nd)
	s.mu.Unlock()
}

// start starts every node kill killed again.
func (s *soakSite) start() error {
	s.mu.Lock()
	down := s.down
	s.down = nil
	s.mu.Unlock()
	var errs []error
	for _, nd := range down {
		errs = append(errs, nd.start())
	}
	return errors.Join(errs...)
}

// start starts the node's applianced, logging to the next incarnation's
// file.
func (nd *soakSiteNode) start() error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	nd.incarnation++
	p, err := startProc(nd.ns, nd.logPath(nd.incarnation), nd.env, nd.bin, nd.args...)
	if err != nil {
		return err
	}
	nd.proc = p
	return nil
}

// logPath is the log of the node's incarnation inc (startSite's first).
func (nd *soakSiteNode) logPath(inc int) string {
	if inc == 1 {
		return filepath.Join(nd.dir, "applianced.log")
	}
	return filepath.Join(nd.dir, fmt.Sprintf("applianced-%d.log", inc))
}

// process is the node's applianced and its name for samples.
func (nd *soakSiteNode) process() (*benchProc, string) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.proc, fmt.Sprintf("applianced-%s-%d", nd.id, nd.incarnation)
}

// setWAN sets every WAN proxy's mode.
func (s *soakSite) setWAN(m lab.FaultMode) {
	for _, nd := range s.nodes {
		for _, p := range nd.wan {
			p.SetMode(m)
		}
	}
}

// logTails is the last lines of every applianced log.
func (s *soakSite) logTails(n int) string {
	var b strings.Builder
	for _, nd := range s.nodes {
		nd.mu.Lock()
		inc := nd.incarnation
		nd.mu.Unlock()
		for i := 1; i <= inc; i++ {
			fmt.Fprintf(&b, "--- %s\n%s\n", nd.logPath(i), lastLines(nd.logPath(i), n))
		}
	}
	return b.String()
}
