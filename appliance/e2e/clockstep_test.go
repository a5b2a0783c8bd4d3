package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/clock"
)

// TestDHCPClockSteps steps the clock of a one-node site's applianced
// (its lab clock hook) a day forward, back to true time and an hour
// back, with a pool of two addresses both leased: the renewing client
// is ACKed through every step and its lease in the store never ends
// earlier than it did; the client that does not renew keeps its address
// from a newcomer, who is offered nothing, although by the stepped clock
// its lease is a day over.
func TestDHCPClockSteps(t *testing.T) {
	s := startNetSite(t, 1)
	n1 := s.nodes[0]
	offsetFile := filepath.Join(s.dir, "n1.clock-offset")
	n1.env = append(n1.env, clock.OffsetEnv+"="+offsetFile)
	s.kill(n1)
	s.start(n1)
	s.waitFormed(n1)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	sub := store.Subnet{CIDR: "198.18.0.0/24", Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.101"}}, Discovery: true}
	if err := s.api("n1").Put(ctx, "subnets", "lab", sub, nil); err != nil {
		t.Fatalf("put subnet: %v", err)
	}
	tap := newDHCPTap(t, s.client, siteIface)
	renewer, sleeper, newcomer := failoverMAC(0xa), failoverMAC(0xb), failoverMAC(0xc)
	var ack *dhcpv4.DHCPv4
	s.waitFor(30*time.Second, "the renewer's first ACK", func() (err error) {
		ack, err = tap.dora(ctx, renewer, doraTimeout, doraTries)
		return err
	})
	ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if _, err := tap.dora(ctx, sleeper, doraTimeout, doraTries); err != nil {
		t.Fatalf("the sleeper's lease: %v", err)
	}
	end := s.lease(ctx, t, ip).Expires
	// The renewer holds its address, as a client does: the server's
	// ACKs to its renewals are sent to it.
	if out, err := s.client.Run(ctx, "ip", "addr", "add", ip.String()+"/24", "dev", siteIface); err != nil {
		t.Fatalf("configure %s on the client: %v: %s", ip, err, out)
	}

	for _, step := range []time.Duration{24 * time.Hour, 0, -time.Hour} {
		if err := clock.WriteOffset(offsetFile, step); err != nil {
			t.Fatal(err)
		}
		// The renewal's start says when the node's clock took the step.
		var l store.Lease
		s.waitFor(30*time.Second, fmt.Sprintf("a renewal on a clock stepped %v", step), func() error {
			sent := time.Now()
			r, err := tap.exchange(ctx, renewal(t, renewer, ip), dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak)
			if err != nil {
				return err
			}
			if r.MessageType() != dhcpv4.MessageTypeAck {
				t.Fatalf("renewal on a clock stepped %v: NAK %q", step, r.Message())
			}
			l = s.lease(ctx, t, ip)
			if d := l.Starts.Sub(sent) - step; d < -5*time.Second || d > 30*time.Second {
				return fmt.Errorf("lease starts %v, not yet %v from the host's clock", l.Starts, step)
			}
			return nil
		})
		if l.Expires.Before(end) || l.MAC != renewer.String() {
			t.Fatalf("clock stepped %v: lease %+v ends before its earlier end %v", step, l, end)
		}
		end = l.Expires
		if offer, err := tap.exchange(ctx, mustDiscover(t, newcomer), dhcpv4.MessageTypeOffer); err == nil {
			t.Fatalf("clock stepped %v: the newcomer was offered %s while both addresses are in use", step, offer.YourIPAddr)
		}
	}
}

// renewal is a client's RENEW of ip: a REQUEST with ciaddr, no server
// identifier nor option 50 (sent broadcast, as in REBINDING: the tap's
// socket has no route of its own; the ACK comes to ip).
func renewal(t *testing.T, mac net.HardwareAddr, ip netip.Addr) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
		dhcpv4.WithClientIP(ip.AsSlice()), dhcpv4.WithBroadcast(true))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lease reads ip's lease from the site.
func (s *netSite) lease(ctx context.Context, t *testing.T, ip netip.Addr) store.Lease {
	t.Helper()
	var l store.Lease
	if err := s.api("n1").Get(ctx, "leases", ip.String(), &l); err != nil {
		t.Fatalf("lease %s: %v", ip, err)
	}
	return l
}
