package tftp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// send sends an octet read request for name with options (name, value,
// name, value...).
func (c *tftpClient) send(name string, opts ...string) {
	c.t.Helper()
	c.sendMode(name, "octet", opts...)
}

// sendMode is send in the given mode.
func (c *tftpClient) sendMode(name, mode string, opts ...string) {
	c.t.Helper()
	req := binary.BigEndian.AppendUint16(nil, opRRQ)
	req = append(append(req, name...), 0)
	req = append(append(req, mode...), 0)
	for _, o := range opts {
		req = append(append(req, o...), 0)
	}
	if _, err := c.conn.WriteTo(req, c.srv); err != nil {
		c.t.Fatal(err)
	}
}

// ack acknowledges block to the transfer's port.
func (c *tftpClient) ack(block uint16) {
	c.t.Helper()
	p := binary.BigEndian.AppendUint16(nil, opAck)
	if _, err := c.conn.WriteTo(binary.BigEndian.AppendUint16(p, block), c.peer); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads the next packets and checks they are DATA blocks first..
// last of file (blocks of 512 bytes). Blocks before first are skipped:
// a slow test may see a window sent again after a timeout.
func (c *tftpClient) expect(file []byte, first, last uint16) {
	c.t.Helper()
	for b := first; b <= last; b++ {
		op, num, p := c.read()
		for op == opData && num < first {
			op, num, p = c.read()
		}
		lo := min(int(b-1)*512, len(file))
		if want := file[lo:min(lo+512, len(file))]; op != opData || num != b || !bytes.Equal(p, want) {
			c.t.Fatalf("got opcode %d block %d (%d bytes), want DATA %d (%d bytes)", op, num, len(p), b, len(want))
		}
	}
}

// The windowed sender on the wire, with a client written out packet by
// packet: an ACK of an earlier block in the window restarts the window
// after it; no ACK within Timeout sends the window again; in lock-step a
// duplicate ACK sends nothing (no Sorcerer's Apprentice doubling).
func TestSenderWire(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		timeout time.Duration
		opts    []string
		steps   func(c *tftpClient, file []byte)
		resent  int
	}{
		"ACK of an earlier block": {10 * time.Second, []string{"windowsize", "4"}, func(c *tftpClient, f []byte) {
			c.ack(0)
			c.expect(f, 1, 4)
			c.ack(2) // 3 was lost
			c.expect(f, 3, 6)
			c.ack(6)
			c.expect(f, 7, 9) // 9 is empty: 8 whole blocks
			c.ack(9)
		}, 2},
		"timeout sends the window again": {300 * time.Millisecond, []string{"windowsize", "3"}, func(c *tftpClient, f []byte) {
			c.ack(0)
			c.expect(f, 1, 3)
			c.expect(f, 1, 3) // not acked: sent again
			c.ack(3)
			c.expect(f, 4, 6)
			c.ack(6)
			c.expect(f, 7, 9)
			c.ack(9)
		}, 3},
		"duplicate ACKs restart the window once": {10 * time.Second, []string{"windowsize", "4"}, func(c *tftpClient, f []byte) {
			c.ack(0)
			c.expect(f, 1, 4)
			c.ack(2) // 3 was lost
			c.expect(f, 3, 6)
			c.ack(2) // the same loss told again: nothing
			c.ack(2)
			c.ack(6)
			c.expect(f, 7, 9)
			c.ack(9)
		}, 2},
		"stale ACK ignored": {10 * time.Second, []string{"windowsize", "4"}, func(c *tftpClient, f []byte) {
			c.ack(0)
			c.expect(f, 1, 4)
			c.ack(4)
			c.expect(f, 5, 8)
			c.ack(1) // older than the window: nothing
			c.ack(8)
			c.expect(f, 9, 9)
			c.ack(9)
		}, 0},
		"lock-step duplicate ACK": {10 * time.Second, nil, func(c *tftpClient, f []byte) {
			c.expect(f, 1, 1)
			c.ack(1)
			c.expect(f, 2, 2)
			c.ack(1) // a duplicate: block 2 is not sent again
			c.ack(2)
			c.expect(f, 3, 3)
			for b := uint16(3); b < 9; b++ {
				c.ack(b)
				c.expect(f, b+1, b+1)
			}
			c.ack(9)
		}, 0},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			fx := newFixture(t, Config{Timeout: tt.timeout})
			file := fx.files["blocks512.bin"]
			c := newClient(t, fx.port)
			c.send("blocks512.bin", tt.opts...)
			if len(tt.opts) > 0 {
				op, num, p := c.read()
				got := string(binary.BigEndian.AppendUint16(nil, num)) + string(p)
				if want := strings.Join(tt.opts, "\x00") + "\x00"; op != opOACK || got != want {
					t.Fatalf("got opcode %d %q, want OACK %q", op, got, want)
				}
			}
			tt.steps(c, file)
			rec := fx.logs.find(t, "tftp: sent", "blocks512.bin")
			// With a short Timeout a slow test may see more sent again.
			resent, _ := strconv.Atoi(rec["resent"])
			if rec["bytes"] != fmt.Sprint(len(file)) || resent < tt.resent || (tt.timeout >= time.Second && resent != tt.resent) {
				t.Errorf("log record %v, want bytes=%d resent=%d", rec, len(file), tt.resent)
			}
		})
	}
}
