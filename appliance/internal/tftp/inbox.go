package tftp

import (
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// maxRequest bounds a request datagram read from the listening socket.
// RFC 2347 keeps requests within 512 bytes; longer ones are cut and
// then fail to parse.
const maxRequest = 1500

// origin is where a request came from and where it was sent to.
type origin struct {
	peer *net.UDPAddr
	// local is the address the request was sent to: the transfer's
	// socket is bound to it, so replies come from where the client sent.
	// Nil when unknown, or for a broadcast.
	local net.IP
	// zone is the interface the request came in on, when local is an
	// IPv6 link-local address, which cannot be bound without it.
	zone string
	// maxBlock is the largest block the interface the request came in on
	// carries unfragmented (its MTU less IP and UDP headers); 512 when
	// unknown.
	maxBlock int
}

// inbox reads requests from the listening socket with the destination
// address and interface of each, when conn is a *net.UDPConn.
type inbox struct {
	conn net.PacketConn
	p4   *ipv4.PacketConn
	p6   *ipv6.PacketConn
}

func newInbox(conn net.PacketConn) *inbox {
	in := &inbox{conn: conn}
	uc, ok := conn.(*net.UDPConn)
	if !ok {
		return in
	}
	// The flags must be set on the PacketConn that reads: it sizes its
	// control buffer by them.
	if isIPv4(uc) {
		p4 := ipv4.NewPacketConn(uc)
		if p4.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true) == nil {
			in.p4 = p4
		}
	} else {
		p6 := ipv6.NewPacketConn(uc)
		if p6.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true) == nil {
			in.p6 = p6
		}
	}
	return in
}

// read reads one datagram into buf and tells where it came from.
func (in *inbox) read(buf []byte) (int, origin, error) {
	var (
		n        int
		src      net.Addr
		err      error
		dst      net.IP
		ifIndex  int
		overhead int // IP and UDP headers
	)
	switch {
	case in.p4 != nil:
		var cm *ipv4.ControlMessage
		n, cm, src, err = in.p4.ReadFrom(buf)
		if cm != nil {
			dst, ifIndex, overhead = cm.Dst, cm.IfIndex, 20+8
		}
	case in.p6 != nil:
		var cm *ipv6.ControlMessage
		n, cm, src, err = in.p6.ReadFrom(buf)
		if cm != nil {
			dst, ifIndex, overhead = cm.Dst, cm.IfIndex, 40+8
		}
	default:
		n, src, err = in.conn.ReadFrom(buf)
	}
	if err != nil {
		return 0, origin{}, err
	}
	o := origin{local: dst, maxBlock: defaultBlockSize}
	if o.peer, _ = src.(*net.UDPAddr); o.peer == nil {
		return 0, origin{}, fmt.Errorf("tftp: datagram from %v, not UDP", src)
	}
	if dst.Equal(net.IPv4bcast) {
		o.local = nil // a reply cannot come from the broadcast address
	}
	if ifIndex > 0 {
		if ifc, err := net.InterfaceByIndex(ifIndex); err == nil {
			o.maxBlock = max(ifc.MTU-overhead, defaultBlockSize)
			if dst.To4() == nil && dst.IsLinkLocalUnicast() {
				o.zone = ifc.Name
			}
		}
	}
	return n, o, nil
}

// isIPv4 reports whether conn is bound to an IPv4 address.
func isIPv4(conn *net.UDPConn) bool {
	host, _, err := net.SplitHostPort(conn.LocalAddr().String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.To4() != nil
}

// enablePacketInfo asks the kernel to report each datagram's destination
// address and interface on conn.
func enablePacketInfo(conn *net.UDPConn) error {
	if isIPv4(conn) {
		return ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	}
	return ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
}
