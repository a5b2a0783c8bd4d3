package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/internal/testwait"
)

// dhcp.nodes3's site on its switch: it forms, its leader answers perfdhcp
// through the switch, and every node holds the leases ACKed (committed
// through Raft before the ACK); stopped, no node runs on. Kea on the same
// switch answers too.
func TestDHCPSite3(t *testing.T) {
	lab.Require(t, "root", "ip", "perfdhcp", "kea-dhcp4")
	tools, err := dhcpTools()
	if err != nil {
		t.Fatal(err)
	}
	bin := testApplianced(t)
	sw := newDHCPSwitch(t, site3Nodes)
	load := dhcpLoad{ns: sw.client, iface: sim.ClientIface, perfdhcp: tools["perfdhcp"]}
	dir := t.TempDir()
	s, err := startDHCPSite(t.Context(), sw, dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	if err := waitDHCP(t.Context(), load, s, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every node serves the site's API CA and takes the admin token the
	// first node wrote.
	var apis []*client.Client
	for i, ns := range sw.nodes {
		api, _, _, err := waitNodeAPI(t.Context(), ns, s.procs[i], filepath.Join(dir, "n1", "data"), site3Addr(i))
		if err != nil {
			t.Fatal(err)
		}
		apis = append(apis, api)
	}
	var counts []int
	testwait.For(t, "every node to hold the same leases", time.Minute, func() bool {
		counts = counts[:0]
		for _, api := range apis {
			var leases []map[string]any
			if err := api.List(t.Context(), "leases", &leases); err != nil {
				t.Logf("leases: %v", err)
				return false
			}
			counts = append(counts, len(leases))
		}
		return counts[0] > 0 && counts[0] == counts[1] && counts[1] == counts[2]
	})
	s.stop()
	for i, p := range s.procs {
		if !p.exited() {
			t.Errorf("node n%d runs on after stop", i+1)
		}
	}

	kea, err := startKea(sw.nodes[0], sim.ServerIface, filepath.Join(t.TempDir()), tools["kea-dhcp4"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kea.stop)
	if err := waitDHCP(t.Context(), load, kea, time.Minute); err != nil {
		t.Fatal(fmt.Errorf("kea on the switch: %w", err))
	}
}
