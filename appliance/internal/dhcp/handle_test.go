package dhcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/store"
)

var t0 = time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)

// testSite is a one-node appliance with a served subnet and one known machine.
type testSite struct {
	srv *Server
	n   *apptest.Node
	in  *iface
	now time.Time
	// unicast: the packets do sends came to in's own address.
	unicast bool
}

const knownMAC = "52:54:00:00:00:01"

func newSite(t testing.TB, discovery bool) *testSite {
	t.Helper()
	n := apptest.Start(t)
	st := &testSite{n: n, in: &iface{name: "test0", addr: netip.MustParseAddr("198.18.0.1"), port: 67}, now: t0}
	putSubnet(t, n, &store.Subnet{
		Name: "lab", CIDR: "198.18.0.0/24", Gateway: "198.18.0.1", DNS: []string{"198.18.0.1"}, Domain: "lab.test",
		Pools: []store.Range{{Start: "198.18.0.100", End: "198.18.0.102"}}, LeaseSeconds: 600, Discovery: discovery,
	})
	putMachine(t, n, &store.Machine{
		ID: "m1", Hostname: "web1", Arch: "x86_64", State: store.StateReady,
		Interfaces: []store.Interface{{MAC: knownMAC, IP: "198.18.0.10", Subnet: "lab"}},
	})
	srv, err := New(Config{Leader: n.Node, Leases: n.Site, Store: n.DB, HTTPPort: 8080, Log: slog.New(slog.NewTextHandler(t.Output(), nil)),
		Now: func() time.Time { return st.now }})
	if err != nil {
		t.Fatal(err)
	}
	st.srv = srv
	return st
}

func putSubnet(t testing.TB, n *apptest.Node, s *store.Subnet) {
	t.Helper()
	if _, err := n.Site.PutSubnet(t.Context(), s, 0); err != nil {
		t.Fatalf("put subnet %s: %v", s.Name, err)
	}
}

func putMachine(t testing.TB, n *apptest.Node, m *store.Machine) {
	t.Helper()
	if _, err := n.Site.PutMachine(t.Context(), m, 0); err != nil {
		t.Fatalf("put machine %s: %v", m.ID, err)
	}
}

func newPacket(t *testing.T, typ dhcpv4.MessageType, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{dhcpv4.WithHwAddr(hw), dhcpv4.WithMessageType(typ)}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (st *testSite) do(t *testing.T, msg *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, net.Addr) {
	t.Helper()
	// Through the wire format, as a real packet would come.
	parsed, err := dhcpv4.FromBytes(msg.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return st.srv.handle(context.Background(), parsed, st.in, st.unicast)
}

// dora runs DISCOVER and REQUEST and returns the ACK.
func (st *testSite) dora(t *testing.T, mac string, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, mac, mods...))
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("DISCOVER from %s: %v, want an OFFER", mac, offer)
	}
	req := newPacket(t, dhcpv4.MessageTypeRequest, mac, append(mods,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())))...)
	ack, _ := st.do(t, req)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("REQUEST from %s: %v, want an ACK", mac, ack)
	}
	return ack
}

func (st *testSite) lease(t *testing.T, ip string) *store.Lease {
	t.Helper()
	var l *store.Lease
	st.n.DB.View(func(tx *store.Tx) error { l, _ = store.Get[store.Lease](tx, ip); return nil })
	return l
}

func TestKnownMachineGetsReservation(t *testing.T) {
	st := newSite(t, false)
	ack := st.dora(t, knownMAC)
	checks := map[string]struct{ got, want string }{
		"yiaddr":    {ack.YourIPAddr.String(), "198.18.0.10"},
		"server id": {ack.ServerIdentifier().String(), "198.18.0.1"},
		"siaddr":    {ack.ServerIPAddr.String(), "198.18.0.1"},
		"mask":      {net.IP(ack.SubnetMask()).String(), "255.255.255.0"},
		"router":    {ack.Router()[0].String(), "198.18.0.1"},
		"dns":       {ack.DNS()[0].String(), "198.18.0.1"},
		"domain":    {ack.DomainName(), "lab.test"},
		"hostname":  {ack.HostName(), "web1"},
		"lease":     {ack.IPAddressLeaseTime(0).String(), "10m0s"},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", name, c.got, c.want)
		}
	}
	l := st.lease(t, "198.18.0.10")
	if l == nil || l.MAC != knownMAC || l.MachineID != "m1" || l.State != store.LeaseActive || !l.Expires.Equal(t0.Add(10*time.Minute)) {
		t.Fatalf("committed lease = %+v", l)
	}
}

func TestUnknownMachine(t *testing.T) {
	st := newSite(t, false)
	if reply, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, "52:54:00:00:00:99")); reply != nil {
		t.Fatalf("unknown MAC on a subnet without discovery got %v", reply.MessageType())
	}
	st = newSite(t, true)
	ack := st.dora(t, "52:54:00:00:00:99")
	if ip := ack.YourIPAddr.String(); ip != "198.18.0.100" {
		t.Fatalf("pool address %s, want 198.18.0.100", ip)
	}
}

func TestNeverTwoMACs(t *testing.T) {
	st := newSite(t, true)
	seen := map[string]string{}
	for i := range 3 {
		mac := net.HardwareAddr{2, 0, 0, 0, 0, byte(i)}.String()
		ip := st.dora(t, mac).YourIPAddr.String()
		if other, dup := seen[ip]; dup {
			t.Fatalf("%s given to %s and %s", ip, other, mac)
		}
		seen[ip] = mac
	}
	// The pool (3 addresses) is exhausted: a fourth client gets nothing.
	if reply, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, "02:00:00:00:00:09")); reply != nil {
		t.Fatalf("exhausted pool offered %s", reply.YourIPAddr)
	}
	// A client asking for another's address is refused.
	nak, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRequest, "02:00:00:00:00:09",
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("198.18.0.100")))))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("request for a taken address: %v, want NAK", nak)
	}
	if l := st.lease(t, "198.18.0.100"); l.MAC != "02:00:00:00:00:00" {
		t.Fatalf("taken address changed hands: %+v", l)
	}
}

func TestRenewReleaseDecline(t *testing.T) {
	st := newSite(t, true)
	const mac = "02:00:00:00:00:01"
	ack := st.dora(t, mac)
	ip := ack.YourIPAddr
	// RENEW: unicast from the client's address, no option 50.
	st.now = t0.Add(5 * time.Minute)
	renew, dst := st.do(t, newPacket(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip)))
	if renew == nil || renew.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("RENEW: %v", renew)
	}
	if dst.String() != ip.String()+":68" {
		t.Errorf("RENEW answered to %s, want unicast to %s:68", dst, ip)
	}
	if l := st.lease(t, ip.String()); !l.Expires.Equal(st.now.Add(10 * time.Minute)) {
		t.Errorf("renewed lease expires %s", l.Expires)
	}
	// RELEASE.
	if r, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRelease, mac, dhcpv4.WithClientIP(ip))); r != nil {
		t.Fatal("RELEASE was answered")
	}
	if l := st.lease(t, ip.String()); l.State != store.LeaseReleased {
		t.Fatalf("after RELEASE: %+v", l)
	}
	// Get it again, then DECLINE: quarantined for everyone.
	ip = st.dora(t, mac).YourIPAddr
	st.do(t, newPacket(t, dhcpv4.MessageTypeDecline, mac, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))))
	if l := st.lease(t, ip.String()); l.State != store.LeaseDeclined {
		t.Fatalf("after DECLINE: %+v", l)
	}
	other := st.dora(t, "02:00:00:00:00:02").YourIPAddr
	if other.Equal(ip) {
		t.Fatalf("quarantined %s offered again", ip)
	}
}

func TestInformAndRelay(t *testing.T) {
	st := newSite(t, false)
	inf, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeInform, knownMAC, dhcpv4.WithClientIP(net.ParseIP("198.18.0.10"))))
	if inf == nil || inf.MessageType() != dhcpv4.MessageTypeAck || inf.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || !inf.YourIPAddr.IsUnspecified() {
		t.Fatalf("INFORM reply: %v", inf)
	}
	// Relayed: the subnet comes from giaddr; the reply goes to the relay
	// with option 82 echoed.
	st.in = &iface{name: "uplink", addr: netip.MustParseAddr("198.19.0.1"), port: 67}
	agent := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("port7")))
	offer, dst := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC,
		dhcpv4.WithGatewayIP(net.ParseIP("198.18.0.254")), dhcpv4.WithOption(agent)))
	if offer == nil {
		t.Fatal("relayed DISCOVER not answered")
	}
	if dst.String() != "198.18.0.254:67" {
		t.Errorf("relayed reply sent to %s", dst)
	}
	if got := offer.GetOneOption(dhcpv4.OptionRelayAgentInformation); string(got) != string(agent.Value.ToBytes()) {
		t.Errorf("option 82 = %x, want %x", got, agent.Value.ToBytes())
	}
	// A relay from a network the site does not serve gets nothing.
	if r, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithGatewayIP(net.ParseIP("203.0.113.1")))); r != nil {
		t.Fatal("DISCOVER relayed from an unserved network was answered")
	}
}

// A client behind a relay gets its lease through the relay (giaddr), then
// renews and releases by unicast straight to the server (giaddr empty,
// ciaddr its address, RFC 2131 4.4.5): its subnet is ciaddr's, not the
// receiving interface's. The same packet broadcast on the server's own
// link is not taken as the remote subnet's.
func TestRelayedClientRenewsByUnicast(t *testing.T) {
	st := newSite(t, true)
	putSubnet(t, st.n, &store.Subnet{Name: "rack2", CIDR: "198.19.1.0/24", Gateway: "198.19.1.1",
		Pools: []store.Range{{Start: "198.19.1.100", End: "198.19.1.110"}}, LeaseSeconds: 600, Discovery: true})
	const mac = "02:00:00:00:01:01"
	relay := dhcpv4.WithGatewayIP(net.ParseIP("198.19.1.1"))
	ack := st.dora(t, mac, relay)
	ip := ack.YourIPAddr
	if l := st.lease(t, ip.String()); l.Subnet != "rack2" || l.MAC != mac {
		t.Fatalf("relayed lease: %+v", l)
	}
	renew := newPacket(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip))

	// Broadcast on the server's link: not the remote subnet's client.
	if r, _ := st.do(t, renew); r == nil || r.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("broadcast REQUEST with another subnet's ciaddr: %v, want NAK", r)
	}
	st.unicast = true
	st.now = t0.Add(5 * time.Minute)
	r, dst := st.do(t, renew)
	if r == nil || r.MessageType() != dhcpv4.MessageTypeAck || !r.YourIPAddr.Equal(ip) {
		t.Fatalf("unicast RENEW of a relayed client: %v", r)
	}
	if dst.String() != ip.String()+":68" {
		t.Errorf("RENEW answered to %s, want %s:68", dst, ip)
	}
	if l := st.lease(t, ip.String()); !l.Expires.Equal(st.now.Add(10*time.Minute)) || l.State != store.LeaseActive {
		t.Errorf("renewed lease: %+v", l)
	}
	if r, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeRelease, mac, dhcpv4.WithClientIP(ip))); r != nil {
		t.Fatal("RELEASE was answered")
	}
	if l := st.lease(t, ip.String()); l.State != store.LeaseReleased {
		t.Fatalf("after unicast RELEASE: %+v", l)
	}
}

func TestBootOptions(t *testing.T) {
	st := newSite(t, false)
	pxe := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003000")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
	}
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC, pxe...))
	if offer.BootFileName != "ipxe.efi" || offer.BootFileNameOption() != "ipxe.efi" || offer.ClassIdentifier() != "PXEClient" {
		t.Errorf("UEFI PXE: file %q/%q class %q", offer.BootFileName, offer.BootFileNameOption(), offer.ClassIdentifier())
	}
	if got := offer.GetOneOption(dhcpv4.OptionVendorSpecificInformation); string(got) != string(pxeVendorOptions) {
		t.Errorf("option 43 = %x", got)
	}
	ipxe := newPacket(t, dhcpv4.MessageTypeDiscover, knownMAC, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")))
	offer, _ = st.do(t, ipxe)
	if want := "http://198.18.0.1:8080/ipxe/" + knownMAC + ".ipxe"; offer.BootFileName != want {
		t.Errorf("iPXE boot file %q, want %q", offer.BootFileName, want)
	}
	if got := offer.GetOneOption(dhcpv4.GenericOptionCode(175)); string(got) != string(ipxeNoProxyDHCP) {
		t.Errorf("option 175 = %x, want %x", got, ipxeNoProxyDHCP)
	}
}

func TestProxyMode(t *testing.T) {
	st := newSite(t, false)
	st.srv.cfg.Proxy = true
	before := st.n.DB.AppliedIndex()
	if r, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, "52:54:00:00:00:77")); r != nil {
		t.Fatal("proxy answered a client that is not booting")
	}
	offer, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, "52:54:00:00:00:77",
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC))))
	if offer == nil || !offer.YourIPAddr.IsUnspecified() || offer.BootFileName != "undionly.kpxe" {
		t.Fatalf("proxy offer: %v", offer)
	}
	// iPXE accepts an address-less offer as proxyDHCP only with option
	// 60 "PXEClient".
	ipxe, _ := st.do(t, newPacket(t, dhcpv4.MessageTypeDiscover, "52:54:00:00:00:77",
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE"))))
	if ipxe == nil || ipxe.ClassIdentifier() != "PXEClient" || !strings.HasSuffix(ipxe.BootFileName, ".ipxe") {
		t.Fatalf("proxy offer to iPXE: %v", ipxe)
	}
	if st.n.DB.AppliedIndex() != before {
		t.Error("the proxy changed the store")
	}
}

// FuzzHandle feeds arbitrary bytes to the handler of a site whose subnet
// allows no discovery and has no machine with those MACs: nothing may
// panic and nothing may change.
func FuzzHandle(f *testing.F) {
	hw, _ := net.ParseMAC("02:00:00:00:00:01")
	d, _ := dhcpv4.NewDiscovery(hw)
	f.Add(d.ToBytes())
	f.Add([]byte{1, 1, 6, 0})
	f.Add(make([]byte, 300))
	fs := newSite(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		before := fs.n.DB.AppliedIndex()
		msg, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		if msg.ClientHWAddr.String() == knownMAC {
			return
		}
		fs.srv.handle(context.Background(), msg, fs.in, false)
		if after := fs.n.DB.AppliedIndex(); after != before {
			t.Fatalf("garbage changed the store: applied index %d -> %d", before, after)
		}
	})
}

func TestReclaimAndEvents(t *testing.T) {
	st := newSite(t, true)
	st.srv.cfg.ReclaimAfter = time.Hour
	ip := st.dora(t, "02:00:00:00:00:01").YourIPAddr.String()
	st.dora(t, knownMAC)
	// A known machine's new lease is an event; a renewal is not, nor is
	// an unknown client's lease.
	st.now = t0.Add(time.Minute)
	st.dora(t, knownMAC)
	var events []*store.Event
	st.n.DB.View(func(tx *store.Tx) error {
		all, err := tx.EventsSince(0, 100)
		for _, e := range all {
			if e.Kind != "machine.created" { // the fixture's machine
				events = append(events, e)
			}
		}
		return err
	})
	if len(events) != 1 || events[0].MachineID != "m1" || events[0].Kind != "dhcp.lease" || events[0].Fields["ip"] != "198.18.0.10" {
		t.Fatalf("events: %+v", events)
	}
	// Nothing is reclaimed while it is current or recently ended.
	if n := st.srv.reclaimOnce(t.Context()); n != 0 {
		t.Fatalf("reclaimed %d current leases", n)
	}
	st.now = t0.Add(10*time.Minute + 2*time.Hour) // both leases ended over an hour ago
	if n := st.srv.reclaimOnce(t.Context()); n != 2 {
		t.Fatalf("reclaimed %d, want 2", n)
	}
	if l := st.lease(t, ip); l != nil {
		t.Fatalf("lease %s survived reclaim: %+v", ip, l)
	}
}

// TestBadReservationDoesNotStopSubnet puts a machine on the gateway's
// address: that machine gets no reservation, everyone else is served.
func TestBadReservationDoesNotStopSubnet(t *testing.T) {
	st := newSite(t, true)
	putMachine(t, st.n, &store.Machine{
		ID: "bad", Arch: "x86_64", State: store.StateReady,
		Interfaces: []store.Interface{{MAC: "52:54:00:00:00:02", IP: "198.18.0.1", Subnet: "lab"}},
	})
	if ack := st.dora(t, knownMAC); ack.YourIPAddr.String() != "198.18.0.10" {
		t.Fatalf("known machine got %s", ack.YourIPAddr)
	}
	if ack := st.dora(t, "02:00:00:00:00:05"); ack.YourIPAddr.String() != "198.18.0.100" {
		t.Fatalf("unknown machine got %s, want the first pool address", ack.YourIPAddr)
	}
}
