package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/appliance/internal/store"
)

const (
	// relayClients is how many udhcpc clients dhcp.relay runs behind the
	// relay.
	relayClients = 10
	// relayNet is the relayed subnet, behind the relay at relayGateway.
	relayNet     = "198.19.1.0/24"
	relayGateway = "198.19.1.1"
	// relayRenewWait is how long each client has to renew.
	relayRenewWait = 20 * time.Second
)

// benchDHCPRelay runs relayClients busybox udhcpc clients, each in its
// own namespace on one switch, behind ISC's dhcrelay (a router between
// the server's network, sim.NetCIDR, and relayNet) and a single-node
// applianced. Each client gets a lease through the relay; then the relay
// is stopped and each is told to renew (SIGUSR1), which udhcpc does by
// unicast to the server, through the router the relay's host still is.
// A renewal succeeds when the client's script reports "renew" with the
// address it had, within relayRenewWait. It prints
//
//	BENCH dhcp.relay renew_ok=<renewed>/<clients>
//
// The duration flag does not apply.
func benchDHCPRelay(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	return runDHCPBench(ctx, log, "dhcp-relay", func(t lab.T, dir string, _ map[string]string, applianced string) {
		for _, bin := range []string{"udhcpc", "dhcrelay"} {
			if _, err := lookTFTP(bin, map[string]string{"udhcpc": "udhcpc", "dhcrelay": "isc-dhcp-relay"}[bin]); err != nil {
				t.Fatal(err)
			}
		}
		bn := sim.NewNet(t)
		site := outpostSite{iface: sim.ServerIface, addr: sim.ServerAddr, subnet: store.Subnet{
			Name: "relayed", CIDR: relayNet, Gateway: relayGateway, LeaseSeconds: 3600,
			Pools:     []store.Range{{Start: "198.19.1.100", End: "198.19.1.200"}},
			Discovery: true, // the clients are machines the site does not know
		}}
		srv, err := startOutpostDHCP(t.Context(), bn, filepath.Join(dir, "outpost"), applianced, site, "info")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.stop()
		relay := startRelay(t, bn, dir)
		clients := startRelayedClients(t, bn.Client, dir, relayClients, func() string {
			return srv.logTail() + "\ndhcrelay's last lines:\n" + lastLines(relay.Stdout, 20) + "\n" + lastLines(relay.Stderr, 20)
		})
		ok, err := renewAll(t.Context(), relay, clients)
		if err != nil {
			t.Fatalf("%v; %s", err, srv.logTail())
		}
		fmt.Printf("BENCH dhcp.relay renew_ok=%d/%d\n", ok, len(clients))
	})
}

// startRelay makes the sim.Net's client host a router to relayNet, on a
// bridge the clients join, and runs dhcrelay there towards the server.
func startRelay(t lab.T, bn *sim.Net, dir string) *lab.Process {
	bn.Client.Bridge("br0", relayGateway+"/24")
	for _, step := range []struct {
		ns   *lab.Netns
		args []string
	}{
		{bn.Client, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
		{bn.Server, []string{"ip", "route", "add", relayNet, "via", sim.ClientAddr}},
	} {
		if out, err := step.ns.Run(t.Context(), step.args[0], step.args[1:]...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(step.args, " "), err, out)
		}
	}
	rp := bn.Client.Start(t, "dhcrelay", "-4", "-d", "-a", "-pf", filepath.Join(dir, "dhcrelay.pid"),
		"-iu", sim.ClientIface, "-id", "br0", sim.ServerAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := rp.WaitForLine(ctx, regexp.MustCompile(`Sending on +Socket`)); err != nil {
		t.Fatalf("dhcrelay: %v", err)
	}
	return rp
}

// relayedClient is a udhcpc behind the relay.
type relayedClient struct {
	name   string
	proc   *lab.Process
	events string // its script's log
}

// startRelayedClients starts n clients, each in a namespace of its own
// joined to the relay host's bridge, and waits for each one's lease, as
// its script saw it.
// On failure it adds why() to its message.
func startRelayedClients(t lab.T, router *lab.Netns, dir string, n int, why func() string) []*relayedClient {
	var out []*relayedClient
	for i := range n {
		name := fmt.Sprintf("rc%d", i+1)
		ns := lab.NewNetns(t, name)
		port := "p-" + name
		router.VethPair(t, ns, port, "", "eth0", "")
		if _, err := router.Run(t.Context(), "ip", "link", "set", port, "master", "br0"); err != nil {
			t.Fatal(err)
		}
		c := &relayedClient{name: name, events: filepath.Join(dir, name+".events")}
		script := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(script, []byte(lab.RelayedUDHCPCScript(c.events)), 0o755); err != nil {
			t.Fatal(err)
		}
		c.proc = ns.Start(t, "udhcpc", "-f", "-R", "-i", "eth0", "-s", script, "-t", "20", "-T", "1")
		out = append(out, c)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, c := range out {
		// udhcpc prints the line, then runs the script with "bound".
		_, err := c.proc.WaitForLine(ctx, regexp.MustCompile(`lease of \S+ obtained`))
		for err == nil {
			if _, ok := lastEvent(c.events, "bound"); ok {
				break
			}
			select {
			case <-ctx.Done():
				err = fmt.Errorf("no bound event in %s: %w", c.events, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
		if err != nil {
			t.Fatalf("%s: no lease through the relay: %v\n%s\nudhcpc's last lines:\n%s\n%s", c.name, err, why(),
				lastLines(c.proc.Stdout, 10), lastLines(c.proc.Stderr, 10))
		}
	}
	return out
}

// renewAll stops the relay, has every client renew and counts those that
// did, by unicast, to the address they had.
func renewAll(ctx context.Context, relay *lab.Process, clients []*relayedClient) (int, error) {
	relay.Kill()
	bound := map[string]string{}
	for _, c := range clients {
		ip, ok := lastEvent(c.events, "bound")
		if !ok {
			return 0, fmt.Errorf("%s: its script saw no lease", c.name)
		}
		bound[c.name] = ip
		if err := c.proc.Signal(syscall.SIGUSR1); err != nil {
			return 0, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	renewed := map[string]bool{}
	deadline := time.Now().Add(relayRenewWait)
	for len(renewed) < len(clients) && time.Now().Before(deadline) && ctx.Err() == nil {
		for _, c := range clients {
			if ip, ok := lastEvent(c.events, "renew"); ok && ip == bound[c.name] {
				renewed[c.name] = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, c := range clients {
		if !renewed[c.name] {
			raw, _ := os.ReadFile(c.events)
			fmt.Fprintf(os.Stderr, "dhcp.relay: %s (%s) did not renew; its script saw %q; udhcpc's last lines:\n%s\n%s\n",
				c.name, bound[c.name], raw, lastLines(c.proc.Stdout, 10), lastLines(c.proc.Stderr, 10))
		}
	}
	return len(renewed), ctx.Err()
}

// lastEvent is the address of the last event of kind in a client's
// script log (lab.RelayedUDHCPCScript's: the event, then the address).
func lastEvent(path, kind string) (string, bool) {
	raw, _ := os.ReadFile(path)
	ip, ok := "", false
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == kind {
			ip, ok = f[1], true
		}
	}
	return ip, ok
}
