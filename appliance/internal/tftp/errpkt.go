package tftp

import (
	"encoding/binary"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// TFTP error codes (RFC 1350, RFC 2347) the server sends or reads.
const (
	opError             = 5
	codeNotDefined      = 0
	codeFileNotFound    = 1
	codeAccessViolation = 2
	codeOptionRefused   = 8
)

// errorPacket builds a TFTP ERROR packet.
func errorPacket(code uint16, msg string) []byte {
	p := make([]byte, 4, 4+len(msg)+1)
	binary.BigEndian.PutUint16(p[0:], opError)
	binary.BigEndian.PutUint16(p[2:], code)
	p = append(p, msg...)
	return append(p, 0)
}

// sendError sends a TFTP error with the given code from the listening
// socket to the client, from the address the request was sent to.
// Failures are ignored: the client asks again.
func (s *Server) sendError(conn net.PacketConn, to origin, code uint16, msg string) {
	p := errorPacket(code, msg)
	uc, ok := conn.(*net.UDPConn)
	switch {
	case !ok || to.local == nil || to.local.IsUnspecified():
		conn.WriteTo(p, to.peer)
	case to.local.To4() != nil:
		ipv4.NewPacketConn(uc).WriteTo(p, &ipv4.ControlMessage{Src: to.local}, to.peer)
	default:
		ipv6.NewPacketConn(uc).WriteTo(p, &ipv6.ControlMessage{Src: to.local}, to.peer)
	}
}
