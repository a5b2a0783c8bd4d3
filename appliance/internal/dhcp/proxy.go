package dhcp

import (
	"context"
	"net"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// proxy answers as a proxyDHCP server (PXE spec 2.1): another server hands
// out addresses; this one answers PXE and iPXE clients' DISCOVERs (and
// their REQUESTs to port 4011) with boot information only: no address,
// no lease.
//
// Each answer to a traced machine is a span of its own: the proxy reads
// the store for that (only for boot requests, which it answers).
func (s *Server) proxy(ctx context.Context, r *request) (reply *dhcpv4.DHCPv4, dst net.Addr) {
	b := chooseBoot(bootInfo(r.msg), s.cfg.Files, r.in.addr, s.cfg.HTTPPort, r.mac, func() bool { return s.secureBoot(r) })
	if b.kind == bootNone {
		return nil, nil
	}
	var typ dhcpv4.MessageType
	switch mt := r.msg.MessageType(); {
	case mt == dhcpv4.MessageTypeDiscover && r.in.port == dhcpv4.ServerPort:
		typ = dhcpv4.MessageTypeOffer
	case mt == dhcpv4.MessageTypeRequest && r.in.port == 4011:
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, nil
	}
	var err error
	if r.trace, err = s.traces.ForMAC(r.mac); err != nil {
		r.log.Warn("dhcp: the machine's trace", "err", err)
	}
	_, endSpan := s.traceExchange(ctx, r)
	defer func() { endSpan(reply) }()
	reply = newReply(r.msg,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(r.in.addr.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(r.in.addr.AsSlice())),
		dhcpv4.WithYourIP(net.IPv4zero),
	)
	s.addBoot(r, reply)
	if reply.ClassIdentifier() == "" {
		// A proxyDHCP reply carries option 60 "PXEClient", as the PXE
		// specification requires: iPXE takes an offer without an
		// address for a proxyDHCP offer only if it does, and ignores
		// it otherwise.
		reply.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
	}
	if r.in.port == 4011 {
		return reply, r.peerOr4011()
	}
	return reply, destination(r.msg, reply)
}

// peerOr4011 answers a port-4011 request where it came from.
func (r *request) peerOr4011() net.Addr {
	if ci := r.msg.ClientIPAddr.To4(); ci != nil && !ci.IsUnspecified() {
		return &net.UDPAddr{IP: ci, Port: dhcpv4.ClientPort}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// secureBoot reads the Secure Boot setting of r's machine, for a proxy,
// which reads no machine for the packets it does not answer. An unknown
// MAC, or a store that cannot be read, has it off: the machine gets iPXE.
func (s *Server) secureBoot(r *request) bool {
	var on bool
	if err := s.db.View(func(tx *store.Tx) error {
		if m, err := tx.MachineByMAC(r.mac); err == nil {
			on = m.SecureBoot
		}
		return nil
	}); err != nil {
		r.log.Warn("dhcp: read the machine's Secure Boot setting", "err", err)
	}
	return on
}
