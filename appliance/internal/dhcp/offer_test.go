package dhcp

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// TestOfferCommitted: an offer of a pool address is committed, as a lease
// in state offered until the end of its hold, before it is sent; a
// reservation's is not, nor an offer of the address a client's active
// lease holds (not shortened to the hold). A server that starts over
// from the store (a new leader) does not offer the address to another
// MAC within the offer's life, even asked for it, and ACKs the first
// client's REQUEST for it.
func TestOfferCommitted(t *testing.T) {
	const a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	st := newSite(t, true)
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, a))
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER: %v, want an OFFER", offer)
	}
	ip := offer.YourIPAddr
	l := st.lease(t, ip.String())
	if l == nil || l.MAC != a || l.State != store.LeaseOffered || !l.Expires.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("lease at %s after the OFFER = %+v, want offered to %s until %s", ip, l, a, t0.Add(30*time.Second))
	}

	// A new leader: a server built anew over the same store.
	srv, err := New(Config{Leader: st.n.Node, Leases: st.n.Site, Store: st.n.DB, HTTPPort: 8080,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: func() time.Time { return st.now }})
	if err != nil {
		t.Fatal(err)
	}
	st.srv = srv
	st.now = t0.Add(29 * time.Second)
	other, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, b, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))))
	if other == nil || other.YourIPAddr.Equal(ip) {
		t.Fatalf("another MAC's DISCOVER asking for %s within its offer's life: %v", ip, other)
	}
	ack := st.dora(t, a)
	if !ack.YourIPAddr.Equal(ip) {
		t.Fatalf("the first client was ACKed %s, not %s, offered to it", ack.YourIPAddr, ip)
	}
	active := st.lease(t, ip.String())

	// Its DISCOVER again (a reboot) leaves its active lease as it is.
	if again, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, a)); again == nil || !again.YourIPAddr.Equal(ip) {
		t.Fatalf("DISCOVER of a leased client: %v, want %s", again, ip)
	}
	if l := st.lease(t, ip.String()); l.State != store.LeaseActive || l.Version != active.Version {
		t.Fatalf("the client's lease after its DISCOVER = %+v, want %+v unchanged", l, active)
	}

	// A reservation's offer commits nothing.
	if o, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC)); o == nil || o.YourIPAddr.String() != "198.18.0.10" {
		t.Fatalf("known machine's DISCOVER: %v", o)
	}
	if l := st.lease(t, "198.18.0.10"); l != nil {
		t.Fatalf("a reservation's offer stored %+v", l)
	}
}

// TestProbeDecision: which offers probe their address first: one no
// lease holds, offered on the receiving interface's own link, not
// probed lately; not a relayed subnet's (its clients are not on this
// link), not the client's own lease's, not one another MAC leases.
func TestProbeDecision(t *testing.T) {
	const a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
	ip := netip.MustParseAddr("198.18.0.100")
	tests := map[string]struct {
		lease   *store.Lease // stored first
		giaddr  net.IP
		quiet   bool // the address answered no probe a moment ago
		noProbe bool // no prober on the interface
		want    bool
	}{
		"no lease":                 {want: true},
		"relayed":                  {giaddr: net.ParseIP("198.18.0.1")},
		"probed lately":            {quiet: true},
		"no prober":                {noProbe: true},
		"another's expired lease":  {lease: &store.Lease{MAC: b, State: store.LeaseActive, Expires: t0}, want: true},
		"the client's expired one": {lease: &store.Lease{MAC: a, State: store.LeaseActive, Expires: t0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := newSite(t, true)
			if tc.lease != nil {
				l := *tc.lease
				l.IP, l.Subnet, l.Starts = ip.String(), "lab", t0.Add(-time.Hour)
				if _, err := st.n.Site.CommitLease(t.Context(), &l); err != nil {
					t.Fatal(err)
				}
			}
			p := &prober{quiet: map[netip.Addr]time.Time{}}
			if tc.quiet {
				p.quiet[ip] = t0.Add(-time.Second)
			}
			if !tc.noProbe {
				st.srv.probers[st.in.name] = p
			}
			msg := newPacket(t, dhcpv4.MessageTypeDiscover, a, dhcpv4.WithGatewayIP(tc.giaddr))
			r := st.srv.prepare(msg, st.in, false)
			if r == nil {
				t.Fatal("no request prepared")
			}
			o := st.srv.pending(r, ip, t0)
			if got := o != nil && o.probe != nil; got != tc.want {
				t.Errorf("probe = %v, want %v", got, tc.want)
			}
		})
	}
}
