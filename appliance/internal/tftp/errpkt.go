package tftp

import (
	"encoding/binary"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// TFTP error codes (RFC 1350) the server sends itself.
const (
	opError             = 5
	codeNotDefined      = 0
	codeAccessViolation = 2
)

// errorPacket builds a TFTP ERROR packet.
func errorPacket(code uint16, msg string) []byte {
	p := make([]byte, 4, 4+len(msg)+1)
	binary.BigEndian.PutUint16(p[0:], opError)
	binary.BigEndian.PutUint16(p[2:], code)
	p = append(p, msg...)
	return append(p, 0)
}

// enablePacketInfo asks the kernel to report each datagram's destination
// address and interface on conn, as pin/tftp does, choosing IPv4 or IPv6
// by the bound address the way pin/tftp does.
func enablePacketInfo(conn *net.UDPConn) error {
	host, _, err := net.SplitHostPort(conn.LocalAddr().String())
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		return ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true)
	}
	return ipv6.NewPacketConn(conn).SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true)
}

// sendError sends a TFTP error with the given code from the listening
// socket to the client of t, from the address the request was sent to.
// pin/tftp can only send code 1; see the package comment. Failures are
// ignored: pin/tftp's own error packet follows anyway.
func (s *Server) sendError(conn net.PacketConn, t transfer, code uint16, msg string) {
	if t == nil {
		return
	}
	to := t.RemoteAddr()
	p := errorPacket(code, msg)
	local := t.LocalIP()
	uc, ok := conn.(*net.UDPConn)
	switch {
	case !ok || local == nil || local.IsUnspecified():
		conn.WriteTo(p, &to)
	case local.To4() != nil:
		ipv4.NewPacketConn(uc).WriteTo(p, &ipv4.ControlMessage{Src: local}, &to)
	default:
		ipv6.NewPacketConn(uc).WriteTo(p, &ipv6.ControlMessage{Src: local}, &to)
	}
}
