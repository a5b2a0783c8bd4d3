package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/outposthq/outpost/appliance/internal/ipam"
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

// answerFunc sends a reply (nil: none is due) to dst.
type answerFunc func(reply *dhcpv4.DHCPv4, dst net.Addr)

// goFunc runs a lease's commit and what follows it without the caller
// waiting, or reports false when too many are in flight already.
type goFunc func(run func()) bool

// handle answers one request, received on in (sent to in's own address
// when unicast), and returns the answer: nil when none is due. A
// REQUEST's lease is committed before it returns.
func (s *Server) handle(ctx context.Context, msg *dhcpv4.DHCPv4, in *iface, unicast bool) (*dhcpv4.DHCPv4, net.Addr) {
	var reply *dhcpv4.DHCPv4
	var dst net.Addr
	s.dispatch(ctx, msg, in, unicast, nil, func(r *dhcpv4.DHCPv4, d net.Addr) { reply, dst = r, d })
	return reply, dst
}

// dispatch answers one request through answer. With async set, a
// REQUEST's lease is committed in what async runs, which answers when the
// commit lands: the caller goes on to the next packet meanwhile. Without,
// dispatch returns once the request is answered.
func (s *Server) dispatch(ctx context.Context, msg *dhcpv4.DHCPv4, in *iface, unicast bool, async goFunc, answer answerFunc) {
	r := s.prepare(msg, in, unicast)
	if r == nil {
		return
	}
	if s.cfg.Proxy {
		answer(s.proxy(ctx, r))
		return
	}
	ctx, endSpan := s.traceExchange(ctx, r)
	done := func(reply *dhcpv4.DHCPv4) {
		endSpan(reply)
		if reply == nil {
			return
		}
		r.log.Debug("dhcp: answered", "reply", reply.MessageType().String(), "yiaddr", reply.YourIPAddr)
		answer(reply, destination(msg, reply))
	}
	switch msg.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		reply, o := s.discover(r)
		if o == nil {
			done(reply)
			return
		}
		commit := func() { done(s.commitOffer(ctx, r, reply, o)) }
		if async == nil {
			commit()
		} else if !async(commit) {
			dropped.Inc()
			endSpan(nil)
		}
	case dhcpv4.MessageTypeRequest:
		reply, l := s.request(r)
		if l == nil {
			done(reply)
			return
		}
		commit := func() { done(s.commitRequest(ctx, r, l)) }
		if async == nil {
			commit()
		} else if !async(commit) {
			dropped.Inc()
			endSpan(nil)
		}
	case dhcpv4.MessageTypeRelease:
		s.release(ctx, r)
		done(nil)
	case dhcpv4.MessageTypeDecline:
		s.decline(ctx, r)
		done(nil)
	case dhcpv4.MessageTypeInform:
		done(s.inform(r))
	default:
		r.log.Debug("dhcp: message type not handled")
		done(nil)
	}
}

// prepare checks msg and reads what answering it needs: the client's
// machine, its trace and its subnet's pool. It returns nil for a request
// that gets no answer.
func (s *Server) prepare(msg *dhcpv4.DHCPv4, in *iface, unicast bool) *request {
	if msg.OpCode != dhcpv4.OpcodeBootRequest || msg.HWType != iana.HWTypeEthernet || len(msg.ClientHWAddr) != 6 {
		s.log.Debug("dhcp: not an Ethernet BOOTREQUEST", "interface", in.name)
		return nil
	}
	r := &request{msg: msg, in: in, unicast: unicast, mac: msg.ClientHWAddr.String()}
	r.log = requestLogger(s.log, slog.String("mac", r.mac), slog.Any("xid", xidValue(msg.TransactionID)), slog.Any("type", typeValue(msg.MessageType())))
	r.log.Debug("dhcp: received", "interface", in.name, "giaddr", msg.GatewayIPAddr)
	if s.cfg.Proxy {
		return r
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
		return nil
	}
	ps, err := s.current(gen)
	if err != nil {
		r.log.Error("dhcp: address pools", "err", err)
		return nil
	}
	r.pool = s.subnetFor(ps, r)
	if r.pool == nil {
		r.log.Debug("dhcp: no subnet served for this request", "giaddr", msg.GatewayIPAddr, "interface", in.name)
		return nil
	}
	return r
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

// discover decides a DISCOVER: its OFFER, or nil for silence, and what
// to do before the OFFER is sent (nil: nothing; see pendingOffer).
func (s *Server) discover(r *request) (*dhcpv4.DHCPv4, *pendingOffer) {
	m := r.machine
	if m == nil && !r.pool.subnet.Discovery {
		r.log.Debug("dhcp: unknown machine and the subnet does not allow discovery", "subnet", r.pool.subnet.Name)
		return nil, nil
	}
	now := s.now()
	requested, _ := netip.AddrFromSlice(r.msg.RequestedIPAddress().To4())
	ip, err := r.pool.alloc.Offer(r.mac, requested, s.steps.JudgeAt(now, r.pool.lease), now.Add(s.cfg.OfferHold))
	if err != nil {
		r.log.Warn("dhcp: no address to offer", "subnet", r.pool.subnet.Name, "err", err)
		return nil, nil
	}
	reply := s.reply(r, dhcpv4.MessageTypeOffer, ip, m)
	if reply == nil {
		return nil, nil
	}
	return reply, s.pending(r, ip, now)
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

// request decides a REQUEST: its answer (a NAK, or nil for silence), or
// the lease to commit before it is ACKed.
func (s *Server) request(r *request) (*dhcpv4.DHCPv4, *store.Lease) {
	if sid := r.msg.ServerIdentifier().To4(); sid != nil && !sid.Equal(r.in.addr.AsSlice()) {
		// The client took another server's offer.
		r.log.Debug("dhcp: request for another server", "server_id", sid)
		return nil, nil
	}
	ip := requestedAddr(r.msg)
	if !ip.IsValid() || ip.IsUnspecified() || !r.pool.prefix.Contains(ip) {
		return s.nak(r, "requested address is not on this subnet"), nil
	}
	m := r.machine
	if m == nil && !r.pool.subnet.Discovery {
		// Not ours to answer, as for its DISCOVER: another server may
		// serve unknown clients on this network.
		r.log.Debug("dhcp: request from an unknown machine ignored", "subnet", r.pool.subnet.Name)
		return nil, nil
	}
	now := s.now()
	if err := r.pool.alloc.Check(r.mac, ip, s.steps.JudgeAt(now, r.pool.lease)); err != nil {
		return s.nak(r, err.Error()), nil
	}
	l := &store.Lease{
		IP: ip.String(), MAC: r.mac, Subnet: r.pool.subnet.Name, State: store.LeaseActive,
		Starts: now.UTC(), Expires: s.renewedUntil(r, ip, now.Add(r.pool.lease)).UTC(), Hostname: r.msg.HostName(),
	}
	if m != nil {
		l.MachineID = m.ID
		if m.Hostname != "" {
			l.Hostname = m.Hostname
		}
	}
	return nil, l
}

// renewedUntil is when a lease of ip to r's client ends if it ends at
// until by this node's clock: never before the client's active lease
// on ip already ends. A clock stepped back (or a node whose clock is
// behind the one that granted the lease) would otherwise shorten the
// lease in the store, and the other nodes, by their clocks, would see
// it over while the client, by its own timer, still holds it. The
// client's lease is the allocator's (the store's, as this leader
// committed it), not a second read of the store.
func (s *Server) renewedUntil(r *request, ip netip.Addr, until time.Time) time.Time {
	if cur, ok := r.pool.alloc.Lease(ip); ok && cur.MAC == r.mac && cur.State == ipam.Active && cur.Expires.After(until) {
		return cur.Expires
	}
	return until
}

// commitRequest commits a REQUEST's lease and returns its ACK, a NAK if
// the site refused the address, or nil (silence: the client retransmits)
// if the commit's outcome is not known.
func (s *Server) commitRequest(ctx context.Context, r *request, l *store.Lease) *dhcpv4.DHCPv4 {
	// The site puts a known machine's new lease on its timeline (not
	// renewals, which come every half lease).
	if _, err := s.cfg.Leases.CommitLease(ctx, l); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			s.invalidate()
			return s.nak(r, err.Error())
		}
		// No leader, a timeout: stay silent; the client retransmits.
		r.log.Warn("dhcp: lease not committed", "ip", l.IP, "err", err)
		return nil
	}
	s.observe(r, l)
	r.log.Info("dhcp: lease", "ip", l.IP, "machine", l.MachineID, "expires", l.Expires)
	return s.reply(r, dhcpv4.MessageTypeAck, netip.MustParseAddr(l.IP), r.machine)
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
	reply := newReply(r.msg,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(r.in.addr.AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	)
	return reply
}
