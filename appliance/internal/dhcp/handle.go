package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// request is one DHCP request with what the handlers derive from it.
type request struct {
	msg *dhcpv4.DHCPv4
	in  *iface
	// unicast says msg was sent to the interface's own address (see
	// packet).
	unicast bool
	mac     string
	log     *slog.Logger
	pool    *pool
	// machine owns the client's MAC; nil for an unknown client.
	machine *store.Machine
	// trace is the trace the machine's exchanges belong to, if any.
	trace machinetrace.Trace
}

// handle answers one request, received on in (sent to in's own address
// when unicast). It returns nil when no answer is due.
func (s *Server) handle(ctx context.Context, msg *dhcpv4.DHCPv4, in *iface, unicast bool) (*dhcpv4.DHCPv4, net.Addr) {
	if msg.OpCode != dhcpv4.OpcodeBootRequest || msg.HWType != iana.HWTypeEthernet || len(msg.ClientHWAddr) != 6 {
		s.log.Debug("dhcp: not an Ethernet BOOTREQUEST", "interface", in.name)
		return nil, nil
	}
	r := &request{msg: msg, in: in, unicast: unicast, mac: msg.ClientHWAddr.String()}
	r.log = s.log.With("mac", r.mac, "xid", msg.TransactionID.String(), "type", msg.MessageType().String())
	r.log.Debug("dhcp: received", "interface", in.name, "giaddr", msg.GatewayIPAddr)
	if s.cfg.Proxy {
		return s.proxy(ctx, r)
	}
	// One read of the store per packet: the IPAM generation, the
	// client's machine and (from it, cached per version) its trace.
	var gen uint64
	if err := s.db.View(func(tx *store.Tx) error {
		gen = tx.IPAMGeneration()
		r.machine, _ = tx.MachineByMAC(r.mac)
		r.trace = s.machineTrace(tx, r)
		return nil
	}); err != nil {
		r.log.Error("dhcp: read store", "err", err)
		return nil, nil
	}
	ps, err := s.current(gen)
	if err != nil {
		r.log.Error("dhcp: address pools", "err", err)
		return nil, nil
	}
	r.pool = s.subnetFor(ps, r)
	if r.pool == nil {
		r.log.Debug("dhcp: no subnet served for this request", "giaddr", msg.GatewayIPAddr, "interface", in.name)
		return nil, nil
	}
	ctx, endSpan := s.traceExchange(ctx, r)
	var reply *dhcpv4.DHCPv4
	defer func() { endSpan(reply) }()
	switch msg.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		reply = s.discover(r)
	case dhcpv4.MessageTypeRequest:
		reply = s.request(ctx, r)
	case dhcpv4.MessageTypeRelease:
		s.release(ctx, r)
	case dhcpv4.MessageTypeDecline:
		s.decline(ctx, r)
	case dhcpv4.MessageTypeInform:
		reply = s.inform(r)
	default:
		r.log.Debug("dhcp: message type not handled")
	}
	if reply == nil {
		return nil, nil
	}
	r.log.Debug("dhcp: answered", "reply", reply.MessageType().String(), "yiaddr", reply.YourIPAddr)
	return reply, destination(msg, reply)
}

// machineTrace is r's machine's trace; none if it has none or the
// store fails (tracing never holds an answer up).
func (s *Server) machineTrace(tx *store.Tx, r *request) machinetrace.Trace {
	if r.machine == nil {
		return machinetrace.Trace{}
	}
	t, err := s.traces.Machine(tx, r.machine)
	if err != nil {
		r.log.Warn("dhcp: the machine's trace", "err", err)
	}
	return t
}

// subnetFor picks the subnet: the relay's (giaddr) if relayed; else, for
// a client that sent to this server's address with its own address in
// ciaddr (renewing, releasing, informing; RFC 2131 4.4.5), the subnet
// of that address, which may be one a relay serves: the client is
// configured and talks to the server directly, the relay not in the
// way; else the receiving interface's. A broadcast's ciaddr is not
// trusted to say where the client is (it may have moved), as Kea does.
func (s *Server) subnetFor(ps *poolSet, r *request) *pool {
	if gi, ok := netip.AddrFromSlice(r.msg.GatewayIPAddr.To4()); ok && !gi.IsUnspecified() {
		return ps.find(gi)
	}
	if ci, ok := netip.AddrFromSlice(r.msg.ClientIPAddr.To4()); ok && r.unicast && !ci.IsUnspecified() {
		return ps.find(ci)
	}
	return ps.find(r.in.addr)
}

// destination follows RFC 2131 4.1: to the relay, to a configured client
// at its address, else broadcast (a client without an address cannot
// receive unicast without an ARP entry we would have to forge).
func destination(req, reply *dhcpv4.DHCPv4) net.Addr {
	if gi := req.GatewayIPAddr.To4(); gi != nil && !gi.IsUnspecified() {
		return &net.UDPAddr{IP: gi, Port: dhcpv4.ServerPort}
	}
	if ci := req.ClientIPAddr.To4(); ci != nil && !ci.IsUnspecified() && reply.MessageType() != dhcpv4.MessageTypeNak {
		return &net.UDPAddr{IP: ci, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

func (s *Server) discover(r *request) *dhcpv4.DHCPv4 {
	m := r.machine
	if m == nil && !r.pool.subnet.Discovery {
		r.log.Debug("dhcp: unknown machine and the subnet does not allow discovery", "subnet", r.pool.subnet.Name)
		return nil
	}
	now := s.now()
	requested, _ := netip.AddrFromSlice(r.msg.RequestedIPAddress().To4())
	ip, err := r.pool.alloc.Offer(r.mac, requested, now, now.Add(s.cfg.OfferHold))
	if err != nil {
		r.log.Warn("dhcp: no address to offer", "subnet", r.pool.subnet.Name, "err", err)
		return nil
	}
	return s.reply(r, dhcpv4.MessageTypeOffer, ip, m)
}

// requestedAddr is the address a REQUEST asks for: option 50 when
// selecting or rebooting, ciaddr when renewing or rebinding.
func requestedAddr(msg *dhcpv4.DHCPv4) netip.Addr {
	if a, ok := netip.AddrFromSlice(msg.RequestedIPAddress().To4()); ok && !a.IsUnspecified() {
		return a
	}
	a, _ := netip.AddrFromSlice(msg.ClientIPAddr.To4())
	return a
}

func (s *Server) request(ctx context.Context, r *request) *dhcpv4.DHCPv4 {
	if sid := r.msg.ServerIdentifier().To4(); sid != nil && !sid.Equal(r.in.addr.AsSlice()) {
		// The client took another server's offer.
		r.log.Debug("dhcp: request for another server", "server_id", sid)
		return nil
	}
	ip := requestedAddr(r.msg)
	if !ip.IsValid() || ip.IsUnspecified() || !r.pool.prefix.Contains(ip) {
		return s.nak(r, "requested address is not on this subnet")
	}
	m := r.machine
	if m == nil && !r.pool.subnet.Discovery {
		// Not ours to answer, as for its DISCOVER: another server may
		// serve unknown clients on this network.
		r.log.Debug("dhcp: request from an unknown machine ignored", "subnet", r.pool.subnet.Name)
		return nil
	}
	now := s.now()
	if err := r.pool.alloc.Check(r.mac, ip, now); err != nil {
		return s.nak(r, err.Error())
	}
	l := &store.Lease{
		IP: ip.String(), MAC: r.mac, Subnet: r.pool.subnet.Name, State: store.LeaseActive,
		Starts: now.UTC(), Expires: now.Add(r.pool.lease).UTC(), Hostname: r.msg.HostName(),
	}
	if m != nil {
		l.MachineID = m.ID
		if m.Hostname != "" {
			l.Hostname = m.Hostname
		}
	}
	// The site puts a known machine's new lease on its timeline (not
	// renewals, which come every half lease).
	if _, err := s.cfg.Leases.CommitLease(ctx, l); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			s.invalidate()
			return s.nak(r, err.Error())
		}
		// No leader, a timeout: stay silent; the client retransmits.
		r.log.Warn("dhcp: lease not committed", "ip", ip, "err", err)
		return nil
	}
	s.observe(r, l)
	r.log.Info("dhcp: lease", "ip", ip, "machine", l.MachineID, "expires", l.Expires)
	return s.reply(r, dhcpv4.MessageTypeAck, ip, m)
}

// observe tells the allocator about a lease this node committed. The
// store accepted it, so a refusal here means the allocator is out of step:
// it is rebuilt at the next packet.
func (s *Server) observe(r *request, l *store.Lease) {
	if err := r.pool.alloc.Observe(site.IPAMLease(l)); err != nil {
		r.log.Warn("dhcp: allocator out of step with the store; rebuilding", "ip", l.IP, "err", err)
		s.invalidate()
	}
}

func (s *Server) release(ctx context.Context, r *request) {
	ip, _ := netip.AddrFromSlice(r.msg.ClientIPAddr.To4())
	if !r.owns(s, ip) {
		r.log.Debug("dhcp: release of an address the client does not hold", "ip", ip)
		return
	}
	now := s.now().UTC()
	l := &store.Lease{IP: ip.String(), MAC: r.mac, Subnet: r.pool.subnet.Name, State: store.LeaseReleased, Starts: now, Expires: now}
	if _, err := s.cfg.Leases.CommitLease(ctx, l); err != nil {
		r.log.Warn("dhcp: release not committed", "ip", ip, "err", err)
		return
	}
	s.observe(r, l)
	r.log.Info("dhcp: released", "ip", ip)
}

// owns reports whether the client holds a lease on ip in the store.
func (r *request) owns(s *Server, ip netip.Addr) bool {
	var ok bool
	_ = s.db.View(func(tx *store.Tx) error {
		l, err := store.Get[store.Lease](tx, ip.String())
		ok = err == nil && l.MAC == r.mac && l.State == store.LeaseActive
		return nil
	})
	return ok
}

func (s *Server) decline(ctx context.Context, r *request) {
	ip, _ := netip.AddrFromSlice(r.msg.RequestedIPAddress().To4())
	if !ip.IsValid() || !r.owns(s, ip) {
		r.log.Debug("dhcp: decline of an address the client was not given", "ip", ip)
		return
	}
	now := s.now().UTC()
	l := &store.Lease{IP: ip.String(), MAC: r.mac, Subnet: r.pool.subnet.Name, State: store.LeaseDeclined, Starts: now, Expires: now.Add(s.cfg.Quarantine)}
	if _, err := s.cfg.Leases.CommitLease(ctx, l); err != nil {
		r.log.Warn("dhcp: decline not committed", "ip", ip, "err", err)
		return
	}
	s.observe(r, l)
	r.log.Warn("dhcp: address declined, quarantined", "ip", ip, "until", l.Expires)
}

func (s *Server) inform(r *request) *dhcpv4.DHCPv4 {
	reply := s.reply(r, dhcpv4.MessageTypeAck, netip.Addr{}, r.machine)
	if reply != nil {
		reply.Options.Del(dhcpv4.OptionIPAddressLeaseTime)
		reply.Options.Del(dhcpv4.OptionRenewTimeValue)
		reply.Options.Del(dhcpv4.OptionRebindingTimeValue)
	}
	return reply
}

func (s *Server) nak(r *request, why string) *dhcpv4.DHCPv4 {
	r.log.Info("dhcp: NAK", "reason", why)
	reply, err := dhcpv4.NewReplyFromRequest(r.msg,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(r.in.addr.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	)
	if err != nil {
		return nil
	}
	echoRelayInfo(r.msg, reply)
	return reply
}
