package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// offerHold is applianced's default offer hold (dhcp.Config.OfferHold).
const offerHold = 30 * time.Second

// TestDHCPOfferSurvivesLeaderChange: client A is offered an address by
// the leader of a 3-node site, which is then SIGKILLed before A
// REQUESTs it. Within the offer's lifetime, client B's DISCOVER to the
// new leader, asking for A's address by option 50, is offered another
// address; A, starting over as a client does when its REQUEST to the
// dead server goes unanswered, is offered its address again by the new
// leader, and its REQUEST is ACKed.
func TestDHCPOfferSurvivesLeaderChange(t *testing.T) {
	s := startNetSite(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	sub := store.Subnet{CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.250"}}, Discovery: true}
	if err := s.api("n1").Put(ctx, "subnets", "lab", sub, nil); err != nil {
		t.Fatalf("put subnet: %v", err)
	}
	leader := s.node(s.waitFormed(s.nodes...))
	tap := newDHCPTap(t, s.client, siteIface)
	s.waitFor(30*time.Second, "a first ACK", func() error {
		_, err := tap.dora(ctx, failoverMAC(0xfffe), doraTimeout, doraTries)
		return err
	})

	a, b := failoverMAC(0xa), failoverMAC(0xb)
	offerA, err := tap.exchange(ctx, mustDiscover(t, a), dhcpv4.MessageTypeOffer)
	if err != nil {
		t.Fatalf("A's DISCOVER: %v", err)
	}
	offeredAt := time.Now()
	ipA, _ := netip.AddrFromSlice(offerA.YourIPAddr.To4())
	if sid := offerA.ServerIdentifier(); !sid.Equal(s.addr[leader.id].AsSlice()) {
		t.Fatalf("A's OFFER came from %s, not the leader %s", sid, s.addr[leader.id])
	}
	var survivors []*node
	for _, n := range s.nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	s.kill(leader)
	newLeader := s.node(s.waitNewLeader(survivors, leader.id))
	newAddr := s.addr[newLeader.id]
	t.Logf("A offered %s by %s; %s leads %v after", ipA, s.addr[leader.id], newLeader.id, time.Since(offeredAt).Round(time.Millisecond))

	// B asks for A's address; the new leader offers another.
	var offerB *dhcpv4.DHCPv4
	s.waitFor(offerHold/2, "an OFFER to B from the new leader", func() error {
		offerB, err = tap.exchange(ctx, mustDiscover(t, b, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipA.AsSlice()))), dhcpv4.MessageTypeOffer)
		return err
	})
	if time.Since(offeredAt) >= offerHold {
		t.Fatalf("B's OFFER came %v after A's: past the offer's lifetime, the test proves nothing", time.Since(offeredAt))
	}
	if got, _ := netip.AddrFromSlice(offerB.YourIPAddr.To4()); got == ipA {
		t.Fatalf("B was offered %s, offered to A %v earlier by the dead leader", got, time.Since(offeredAt).Round(time.Millisecond))
	}
	if sid := offerB.ServerIdentifier(); !sid.Equal(newAddr.AsSlice()) {
		t.Fatalf("B's OFFER came from %s, not the new leader %s", sid, newAddr)
	}

	// A starts over with the new leader and gets its address.
	offerA2, err := tap.exchange(ctx, mustDiscover(t, a), dhcpv4.MessageTypeOffer)
	if err != nil {
		t.Fatalf("A's second DISCOVER: %v", err)
	}
	if got, _ := netip.AddrFromSlice(offerA2.YourIPAddr.To4()); got != ipA {
		t.Fatalf("the new leader offered A %s, not %s, the address it was offered", got, ipA)
	}
	req, err := dhcpv4.NewRequestFromOffer(offerA2, dhcpv4.WithBroadcast(true))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := tap.exchange(ctx, req, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
	if err != nil {
		t.Fatalf("A's REQUEST: %v", err)
	}
	if ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(ipA.AsSlice()) {
		t.Fatalf("A's REQUEST for %s: %s %s (%s)", ipA, ack.MessageType(), ack.YourIPAddr, ack.Message())
	}
	checkOneMACPerAddress(t, tap.replies())
}

func mustDiscover(t *testing.T, mac net.HardwareAddr, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.NewDiscovery(mac, append([]dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// exchange sends msg (retransmitted as dora does) and returns the first
// reply to its transaction of one of the types in want.
func (d *dhcpTap) exchange(ctx context.Context, msg *dhcpv4.DHCPv4, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	ch, unwatch := d.watch(msg.TransactionID)
	defer unwatch()
	r, err := d.roundTrip(ctx, msg, ch, doraTimeout, doraTries, func(m *dhcpv4.DHCPv4) bool {
		for _, w := range want {
			if m.MessageType() == w {
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", msg.MessageType(), err)
	}
	return r, nil
}
