package dhcp

import (
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/clock"
)

// withMonotonic gives st's server a step guard over a monotonic clock the
// test moves: the returned function lets d pass on both clocks, as time
// passing does; moving st.now alone is a step of the wall clock.
func withMonotonic(t *testing.T, st *testSite) (pass func(d time.Duration)) {
	var mono time.Duration
	st.srv.steps = clock.NewStepGuard(func() time.Time { return st.now }, func() time.Duration { return mono },
		slog.New(slog.NewTextHandler(t.Output(), nil)))
	return func(d time.Duration) { mono += d; st.now = st.now.Add(d) }
}

func renew(t *testing.T, st *testSite, mac string, ip net.IP) *dhcpv4.DHCPv4 {
	t.Helper()
	ack, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip)))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("RENEW of %s by %s: %v, want an ACK", ip, mac, ack)
	}
	return ack
}

// TestForwardStepKeepsLiveLeases steps the clock a day forward with the
// pool full: no address of a client that still holds it (by its own,
// unstepped timer) goes to another MAC, the holders renew, and only a
// lease time later are the addresses of clients that never renewed
// handed out again.
func TestForwardStepKeepsLiveLeases(t *testing.T) {
	st := newSite(t, true)
	pass := withMonotonic(t, st)
	held := map[string]net.IP{}
	for i := range 3 {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}.String()
		held[mac] = st.dora(t, mac).YourIPAddr
	}
	const stranger = "02:00:00:00:00:09"
	pass(time.Minute)
	st.now = st.now.Add(24 * time.Hour) // the step
	if reply, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, stranger)); reply != nil {
		t.Fatalf("a day's step forward: %s offered to a new client while its holder's lease runs", reply.YourIPAddr)
	}
	nak, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRequest, stranger,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(held["02:00:00:00:00:00"]))))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("a day's step forward: a request for a held address got %v, want a NAK", nak)
	}
	// The first client renews (its T1 came); the others went away.
	renew(t, st, "02:00:00:00:00:00", held["02:00:00:00:00:00"])
	if l := st.lease(t, held["02:00:00:00:00:00"].String()); !l.Expires.Equal(st.now.Add(10 * time.Minute)) {
		t.Fatalf("renewal after the step expires %v, want a lease time after the stepped clock", l.Expires)
	}
	pass(11 * time.Minute) // past a lease time after the step
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, stranger))
	if offer == nil {
		t.Fatal("a lease time after the step, the addresses of clients that never renewed are still held")
	}
	if offer.YourIPAddr.Equal(held["02:00:00:00:00:00"]) {
		t.Fatalf("offered %s, which its renewing holder has", offer.YourIPAddr)
	}
}

// TestBackwardStepNeverShortensLease steps the clock an hour back: a
// renewal then would end the lease before it ended already, and the
// other nodes (or this one, stepped forward again) would see a live
// lease over. The renewal keeps the later end.
func TestBackwardStepNeverShortensLease(t *testing.T) {
	st := newSite(t, true)
	pass := withMonotonic(t, st)
	const mac = "02:00:00:00:00:01"
	ip := st.dora(t, mac).YourIPAddr
	end := st.lease(t, ip.String()).Expires
	pass(5 * time.Minute)
	st.now = st.now.Add(-time.Hour)
	renew(t, st, mac, ip)
	if l := st.lease(t, ip.String()); l.Expires.Before(end) || l.State != store.LeaseActive {
		t.Fatalf("renewal an hour back: lease ends %v, before its end %v", l.Expires, end)
	}
	// Back to the true time: the client renews at its T1, and the lease
	// runs a lease time from then.
	st.now = st.now.Add(time.Hour)
	pass(5 * time.Minute)
	renew(t, st, mac, ip)
	if l := st.lease(t, ip.String()); !l.Expires.Equal(st.now.Add(10 * time.Minute)) {
		t.Fatalf("renewal after the step back: ends %v, want %v", l.Expires, st.now.Add(10*time.Minute))
	}
	if reply, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRequest, "02:00:00:00:00:09",
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))); reply == nil || reply.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("another client asking for the renewed address: %v, want a NAK", reply)
	}
}

// TestForwardStepReclaimsNothingLive steps the clock two days forward,
// past ReclaimAfter: the leases of live clients are not deleted.
func TestForwardStepReclaimsNothingLive(t *testing.T) {
	st := newSite(t, true)
	pass := withMonotonic(t, st)
	ip := st.dora(t, "02:00:00:00:00:01").YourIPAddr.String()
	pass(time.Minute)
	st.now = st.now.Add(48 * time.Hour)
	if n := st.srv.reclaimOnce(t.Context()); n != 0 {
		t.Fatalf("two days' step forward reclaimed %d live leases", n)
	}
	if l := st.lease(t, ip); l == nil {
		t.Fatalf("lease %s gone after the step", ip)
	}
}
