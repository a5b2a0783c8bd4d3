package dhcp

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestConcurrentClientsNeverShareAnAddress: many clients at once, each
// committing its REQUEST as the server does (on a committer goroutine that
// answers when it lands), race for a pool of three addresses: half of
// them through DISCOVER and REQUEST, half asking straight for an address
// of the pool (one another client may hold or be offered). Each client
// sends one REQUEST (a client that moves gives its old address up), so
// no address may be ACKed to two MACs, and every ACK is the lease the
// store holds.
func TestConcurrentClientsNeverShareAnAddress(t *testing.T) {
	st := newSite(t, true)
	const clients = 24
	pool := []net.IP{net.IPv4(198, 18, 0, 100), net.IPv4(198, 18, 0, 101), net.IPv4(198, 18, 0, 102)}
	var (
		mu    sync.Mutex
		acked = map[string]map[string]bool{} // address -> MACs ACKed it
	)
	answer := func(mac string) answerFunc {
		return func(reply *dhcpv4.DHCPv4, _ net.Addr) {
			if reply == nil || reply.MessageType() != dhcpv4.MessageTypeAck {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ip := reply.YourIPAddr.String()
			if acked[ip] == nil {
				acked[ip] = map[string]bool{}
			}
			acked[ip][mac] = true
		}
	}
	send := func(msg *dhcpv4.DHCPv4, got answerFunc) {
		parsed, err := dhcpv4.FromBytes(msg.ToBytes())
		if err != nil {
			t.Error(err)
			return
		}
		st.srv.dispatch(context.Background(), parsed, st.in, false, st.srv.goCommit, got)
	}
	var wg sync.WaitGroup
	for i := range clients {
		mac := fmt.Sprintf("02:00:00:00:01:%02x", i)
		if i%2 == 1 {
			wg.Go(func() {
				send(newPacket(t, dhcpv4.MessageTypeRequest, mac,
					dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(pool[i/2%len(pool)]))), answer(mac))
			})
			continue
		}
		wg.Go(func() {
			send(newPacket(t, dhcpv4.MessageTypeDiscover, mac), func(offer *dhcpv4.DHCPv4, _ net.Addr) {
				if offer == nil {
					return // the pool is taken
				}
				send(newPacket(t, dhcpv4.MessageTypeRequest, mac,
					dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
					dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier()))), answer(mac))
			})
		})
	}
	wg.Wait()
	st.srv.committing.Wait()
	if len(acked) == 0 {
		t.Fatal("no client was ACKed an address")
	}
	for ip, macs := range acked {
		if len(macs) != 1 {
			t.Errorf("%s ACKed to %d MACs: %v", ip, len(macs), macs)
		}
		for mac := range macs {
			if l := st.lease(t, ip); l == nil || l.MAC != mac {
				t.Errorf("%s ACKed to %s, the store's lease is %+v", ip, mac, l)
			}
		}
	}
}
