package tftp

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// tftpClient is one client port: it sends read requests and acks by
// hand, so a test can hold a transfer open by not acking.
type tftpClient struct {
	t    *testing.T
	conn net.PacketConn
	srv  *net.UDPAddr
	peer net.Addr // the transfer's port, once DATA came from it
}

func newClient(t *testing.T, port string) *tftpClient {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv, _ := net.ResolveUDPAddr("udp4", "127.0.0.1:"+port)
	return &tftpClient{t: t, conn: c, srv: srv}
}

// request sends a read request for name and returns the first packet
// answered: its opcode, block or error code, and payload.
func (c *tftpClient) request(name string) (op, num uint16, payload []byte) {
	c.t.Helper()
	req := binary.BigEndian.AppendUint16(nil, 1)
	req = append(append(req, name...), 0)
	req = append(req, "octet\x00"...)
	if _, err := c.conn.WriteTo(req, c.srv); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

func (c *tftpClient) read() (op, num uint16, payload []byte) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 600)
	n, from, err := c.conn.ReadFrom(buf)
	if err != nil || n < 4 {
		c.t.Fatalf("no answer: %v", err)
	}
	c.peer = from
	return binary.BigEndian.Uint16(buf), binary.BigEndian.Uint16(buf[2:]), buf[4:n]
}

// finish acks block and every one after it until the last (short) one.
func (c *tftpClient) finish(block uint16, size int) {
	c.t.Helper()
	for {
		ack := binary.BigEndian.AppendUint16(nil, 4)
		ack = binary.BigEndian.AppendUint16(ack, block)
		if _, err := c.conn.WriteTo(ack, c.peer); err != nil {
			c.t.Fatal(err)
		}
		if size < 512 {
			return
		}
		op, num, p := c.read()
		if op != 3 {
			c.t.Fatalf("got opcode %d, want DATA", op)
		}
		block, size = num, len(p)
	}
}

// At most MaxTransfers transfers run at once: one more read request is
// refused at once with "server busy", and logged once per client however
// many come; once a transfer ends, a request is served again.
func TestMaxTransfers(t *testing.T) {
	parallel(t)
	fx := newFixture(t, Config{MaxTransfers: 3, Timeout: 10 * time.Second})
	var held []*tftpClient
	for range 3 {
		c := newClient(t, fx.port)
		if op, num, _ := c.request("blocks512.bin"); op != 3 || num != 1 {
			t.Fatalf("transfer %d: opcode %d block %d, want DATA 1", len(held), op, num)
		}
		held = append(held, c) // not acked: the transfer stays open
	}
	for range 5 {
		op, code, msg := newClient(t, fx.port).request("blocks512.bin")
		if op != opError || code != codeNotDefined || string(msg) != "server busy, retry later\x00" {
			t.Fatalf("a fourth transfer: opcode %d code %d %q, want ERROR 0 server busy", op, code, msg)
		}
	}
	if n := fx.logs.count("tftp: busy, read request refused"); n != 1 {
		t.Errorf("%d busy lines for one client, want 1", n)
	}

	held[0].finish(1, 512)
	// The slot comes back once the server has seen the last ack.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := newClient(t, fx.port)
		op, num, _ := c.request("blocks512.bin")
		if op == 3 && num == 1 {
			held = append(held, c)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no transfer served after one ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range held[1:] {
		c.finish(1, 512)
	}
}
