package bmc

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"
)

// ipmiPingRequest is Get Channel Authentication Capabilities (NetFn App,
// command 0x38) for this channel at administrator level, asking for the
// IPMI 2.0 data, in an RMCP packet with an IPMI 1.5 session-less header.
// Every IPMI BMC answers it before any session, password or not.
var ipmiPingRequest = []byte{
	0x06, 0x00, 0xff, 0x07, // RMCP: version 6, no ack, class IPMI
	0x00,                   // authentication type none
	0x00, 0x00, 0x00, 0x00, // session sequence
	0x00, 0x00, 0x00, 0x00, // session id
	0x09,             // message length
	0x20, 0x18, 0xc8, // BMC address, NetFn App << 2, checksum
	0x81, 0x00, 0x38, // software id, sequence, command
	0x8e, 0x04, // channel "this one" + IPMI 2.0 data, privilege admin
	0xb5, // checksum
}

// pingTries and pingWait bound a ping: three requests, 300 ms apart.
const (
	pingTries = 3
	pingWait  = 300 * time.Millisecond
)

// ipmiPing reports whether anything answers IPMI at addr (host:port). A
// refusal (ICMP port unreachable) ends it at once.
func ipmiPing(ctx context.Context, addr string) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	buf := make([]byte, 512)
	for range pingTries {
		if ctx.Err() != nil {
			return false
		}
		if _, err := conn.Write(ipmiPingRequest); err != nil {
			return false
		}
		deadline := time.Now().Add(pingWait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err == nil && n >= 4 && buf[0] == 0x06 && buf[3] == 0x07 {
			return true
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return false
		}
	}
	return false
}
