package sim

import "github.com/outposthq/outpost/appliance/internal/lab"

// The two ends of a Net: interface names and addresses, in NetCIDR.
const (
	ServerIface = "dhcp-s"
	ClientIface = "dhcp-c"
	ServerAddr  = "198.18.0.1"
	ClientAddr  = "198.18.0.2"
	// NetCIDR is the subnet of both ends, in the benchmarking range.
	NetCIDR = "198.18.0.0/16"
)

// Net is a load test's network: two namespaces joined by a veth pair,
// as two hosts by a cable. The server under test (applianced, kea-dhcp4,
// dnsmasq, or an in-process appliance) runs in Server, on ServerIface at
// ServerAddr; the load (simulated machines, a Relay at ClientAddr,
// perfdhcp) comes from Client, on ClientIface at ClientAddr.
type Net struct {
	Server *lab.Netns
	Client *lab.Netns
}

// NewNet creates the namespaces and the pair; they are deleted, with
// whatever still runs inside them, when t ends.
func NewNet(t lab.T) *Net {
	t.Helper()
	n := &Net{Server: lab.NewNetns(t, "sim-server"), Client: lab.NewNetns(t, "sim-client")}
	n.Server.VethPair(t, n.Client, ServerIface, ServerAddr+"/16", ClientIface, ClientAddr+"/16")
	return n
}
