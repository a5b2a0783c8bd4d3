package dhcp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// BenchmarkDORA runs full exchanges through the handler (no sockets) from
// many goroutines, each ACK committed through a one-node Raft.
func BenchmarkDORA(b *testing.B) {
	st := newSite(b, true)
	putSubnet(b, st.n, &store.Subnet{
		Name: "big", CIDR: "198.19.0.0/16", Pools: []store.Range{{Start: "198.19.1.0", End: "198.19.255.250"}},
		LeaseSeconds: 3600, Discovery: true,
	})
	st.in.addr = netip.MustParseAddr("198.19.5.1") // in "big", not in "lab" (no two subnets overlap)
	var n atomic.Uint64
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) % 60000 // the pool holds 65,275: clients come back
			mac := net.HardwareAddr{2, 1, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			d, _ := dhcpv4.NewDiscovery(mac)
			offer, _ := st.srv.handle(context.Background(), d, st.in, false)
			if offer == nil {
				b.Error("no offer")
				return
			}
			req, _ := dhcpv4.NewRequestFromOffer(offer)
			ack, _ := st.srv.handle(context.Background(), req, st.in, false)
			if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
				b.Error("no ack")
				return
			}
		}
	})
}

// knownSite is a site whose machines each have a workflow, with
// traceparent tp (none if empty), and a provider keeping spans.
func knownSite(b *testing.B, traced bool, machines int) (*testSite, *tracetest.Recorder, string, []net.HardwareAddr) {
	b.Helper()
	rec := tracetest.Start(b)
	tp, end := rec.Root(b, tracing.SpanOrderApply)
	end()
	if !traced {
		tp = ""
	}
	st := newSite(b, false)
	putSubnet(b, st.n, &store.Subnet{
		Name: "big", CIDR: "198.19.0.0/16", Pools: []store.Range{{Start: "198.19.1.0", End: "198.19.255.250"}},
		LeaseSeconds: 3600,
	})
	st.in.addr = netip.MustParseAddr("198.19.5.1")
	if _, err := st.n.Site.PutTemplate(b.Context(), &store.Template{Name: "install",
		Actions: []store.Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "true"}}}}, 0); err != nil {
		b.Fatal(err)
	}
	macs := make([]net.HardwareAddr, machines)
	for i := range macs {
		macs[i] = net.HardwareAddr{2, 2, 0, 0, 0, byte(i)}
		id := fmt.Sprintf("b%d", i)
		putMachine(b, st.n, &store.Machine{ID: id, State: store.StateReady, Interfaces: []store.Interface{{MAC: macs[i].String()}}})
		if _, err := st.n.Site.CreateWorkflow(tracing.WithRemoteParent(b.Context(), tp), &store.Workflow{ID: "wf-" + id, MachineID: id,
			Template: "install"}); err != nil {
			b.Fatal(err)
		}
	}
	return st, rec, tp, macs
}

var tracedNames = map[bool]string{false: "untraced", true: "traced"}

// BenchmarkDORAKnown runs full exchanges of known machines, each with a
// workflow, whose traceparent is set ("traced": every exchange is a
// dhcp.exchange span, kept in a span store) or not ("untraced"): the
// difference is what tracing costs an exchange, next to the lease's
// commit.
func BenchmarkDORAKnown(b *testing.B) {
	for _, traced := range []bool{false, true} {
		b.Run(tracedNames[traced], func(b *testing.B) {
			st, rec, tp, macs := knownSite(b, traced, 64)
			var n atomic.Uint64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					d, _ := dhcpv4.NewDiscovery(macs[n.Add(1)%uint64(len(macs))])
					offer, _ := st.srv.handle(context.Background(), d, st.in, false)
					if offer == nil {
						b.Error("no offer")
						return
					}
					req, _ := dhcpv4.NewRequestFromOffer(offer)
					if ack, _ := st.srv.handle(context.Background(), req, st.in, false); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
						b.Error("no ack")
						return
					}
				}
			})
			b.StopTimer()
			if traced && len(rec.Named(b, tp, tracing.SpanDHCP)) == 0 {
				b.Error("no dhcp.exchange span recorded")
			}
		})
	}
}

// BenchmarkInformKnown answers INFORMs of known machines, traced or not:
// no lease is committed, so the difference is the CPU a span costs.
func BenchmarkInformKnown(b *testing.B) {
	for _, traced := range []bool{false, true} {
		b.Run(tracedNames[traced], func(b *testing.B) {
			st, rec, tp, macs := knownSite(b, traced, 64)
			var n atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m, _ := dhcpv4.New(dhcpv4.WithHwAddr(macs[n.Add(1)%uint64(len(macs))]), dhcpv4.WithMessageType(dhcpv4.MessageTypeInform),
						dhcpv4.WithClientIP(net.IPv4(198, 19, 1, 1)))
					if ack, _ := st.srv.handle(context.Background(), m, st.in, false); ack == nil {
						b.Error("no answer")
						return
					}
				}
			})
			b.StopTimer()
			if traced && len(rec.Named(b, tp, tracing.SpanDHCP)) == 0 {
				b.Error("no dhcp.exchange span recorded")
			}
		})
	}
}
