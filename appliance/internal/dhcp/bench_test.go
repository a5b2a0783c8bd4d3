package dhcp

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// BenchmarkDORA runs full exchanges through the handler (no sockets) from
// many goroutines, each ACK committed through a one-node Raft.
func BenchmarkDORA(b *testing.B) {
	st := newSite(b, true)
	putSubnet(b, st.n, &store.Subnet{
		Name: "big", CIDR: "198.18.0.0/16", Pools: []store.Range{{Start: "198.18.1.0", End: "198.18.255.250"}},
		LeaseSeconds: 3600, Discovery: true,
	})
	st.in.addr = netip.MustParseAddr("198.18.5.1") // in "big", not in "lab"
	var n atomic.Uint64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % 60000 // the pool holds 65,275: clients come back
			mac := net.HardwareAddr{2, 1, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			d, _ := dhcpv4.NewDiscovery(mac)
			offer, _ := st.srv.handle(context.Background(), d, st.in)
			if offer == nil {
				b.Error("no offer")
				return
			}
			req, _ := dhcpv4.NewRequestFromOffer(offer)
			ack, _ := st.srv.handle(context.Background(), req, st.in)
			if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
				b.Error("no ack")
				return
			}
		}
	})
}
