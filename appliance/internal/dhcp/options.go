package dhcp

import (
	"net"
	"net/netip"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// reply builds an OFFER or ACK for ip (zero for INFORM) with the subnet's
// options and the boot information the client needs.
func (s *Server) reply(r *request, typ dhcpv4.MessageType, ip netip.Addr, m *store.Machine) *dhcpv4.DHCPv4 {
	sub := r.pool.subnet
	lease := uint32(r.pool.lease.Seconds())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(r.in.addr.AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(r.in.addr.AsSlice())),
		dhcpv4.WithNetmask(net.CIDRMask(r.pool.prefix.Bits(), 32)),
		dhcpv4.WithLeaseTime(lease),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(r.pool.lease / 2)),
		dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(r.pool.lease * 7 / 8)),
	}
	if ip.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(ip.AsSlice()))
	}
	if sub.Gateway != "" {
		mods = append(mods, dhcpv4.WithRouter(net.ParseIP(sub.Gateway)))
	}
	if r.msg.IsOptionRequested(dhcpv4.OptionClasslessStaticRoute) {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptClasslessStaticRoute(metadataRoutes(r.msg, sub.Gateway)...)))
	}
	if len(sub.DNS) > 0 {
		dns := make([]net.IP, len(sub.DNS))
		for i, d := range sub.DNS {
			dns[i] = net.ParseIP(d)
		}
		mods = append(mods, dhcpv4.WithDNS(dns...))
	}
	if sub.Domain != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(sub.Domain)))
	}
	if m != nil && m.Hostname != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(m.Hostname)))
	}
	reply := newReply(r.msg, mods...)
	s.addBoot(r, reply)
	return reply
}

// addBoot adds next-server, the boot file and the PXE options.
func (s *Server) addBoot(r *request, reply *dhcpv4.DHCPv4) {
	b := chooseBoot(bootInfo(r.msg), s.cfg.Files, r.in.addr, s.cfg.HTTPPort, r.mac,
		func() bool { return r.machine != nil && r.machine.SecureBoot })
	if b.kind == bootNone {
		return
	}
	// Which way a machine boots (PXE and TFTP, UEFI HTTP boot, iPXE's
	// script) is otherwise nowhere to be seen before its first download.
	r.log.Debug("dhcp: boot", "kind", b.kind.String(), "file", b.file, "class", b.classID)
	reply.BootFileName = b.file
	reply.UpdateOption(dhcpv4.OptBootFileName(b.file))
	if b.classID != "" {
		reply.UpdateOption(dhcpv4.OptClassIdentifier(b.classID))
	}
	if b.vendorOK {
		reply.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionVendorSpecificInformation, Value: dhcpv4.OptionGeneric{Data: pxeVendorOptions}})
	}
	if b.kind == bootPXE {
		reply.UpdateOption(dhcpv4.OptTFTPServerName(r.in.addr.String()))
	}
	if b.kind == bootIPXE {
		// iPXE's encapsulated options (175): no-pxedhcp (176) = 1, so
		// iPXE does not wait seconds for proxyDHCP offers before it
		// requests the address.
		reply.UpdateOption(dhcpv4.Option{Code: dhcpv4.GenericOptionCode(175), Value: dhcpv4.OptionGeneric{Data: ipxeNoProxyDHCP}})
	}
	// PXE firmware identifies itself with a UUID (option 97) and some
	// implementations ignore replies that don't echo it.
	if uuid := r.msg.GetOneOption(dhcpv4.OptionClientMachineIdentifier); uuid != nil {
		reply.UpdateOption(dhcpv4.Option{Code: dhcpv4.OptionClientMachineIdentifier, Value: dhcpv4.OptionGeneric{Data: uuid}})
	}
}

func bootInfo(msg *dhcpv4.DHCPv4) bootRequest {
	br := bootRequest{classID: msg.ClassIdentifier(), userClass: msg.GetOneOption(dhcpv4.OptionUserClassInformation)}
	for _, a := range msg.ClientArch() {
		br.archs = append(br.archs, uint16(a))
	}
	return br
}

// metadataAddr is the metadata service's link-local address, which the
// site's leader holds (package linklocal).
var metadataAddr = net.IPv4(169, 254, 169, 254).To4()

// metadataRoutes are the classless static routes (option 121, RFC 3442)
// that lead a client to the metadata address. A client on the
// appliance's own segment routes it on-link (router 0.0.0.0) and finds
// the leader by ARP, whichever node leads, rather than sending it to its
// gateway; a relayed client sends it to its gateway (the subnet's, else
// the relay), which must route it to the appliance. A client given
// option 121 ignores option 3 (RFC 3442), so the subnet's gateway is
// also given as the default route.
func metadataRoutes(req *dhcpv4.DHCPv4, gateway string) []*dhcpv4.Route {
	host := &net.IPNet{IP: metadataAddr, Mask: net.CIDRMask(32, 32)}
	via := net.IPv4zero.To4()
	gw := net.ParseIP(gateway).To4()
	if gi := req.GatewayIPAddr.To4(); gi != nil && !gi.IsUnspecified() {
		via = gi
		if gw != nil {
			via = gw
		}
	}
	routes := []*dhcpv4.Route{{Dest: host, Router: via}}
	if gw != nil {
		routes = append(routes, &dhcpv4.Route{Dest: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, Router: gw})
	}
	return routes
}
