package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// errTimeout ends a transfer whose client stopped acknowledging.
var errTimeout = errors.New("tftp: client stopped acknowledging")

// clientError is an ERROR packet the client sent, which ends the
// transfer.
type clientError struct {
	code uint16
	msg  string
}

func (e *clientError) Error() string {
	return fmt.Sprintf("tftp: client sent error %d: %s", e.code, e.msg)
}

// blocks gives the payload of a DATA block. Blocks are numbered from 1
// without wrapping (the wire number is the low 16 bits); a block shorter
// than buf is the last one.
type blocks interface {
	block(n int64, buf []byte) (int, error)
}

// fileBlocks reads any block of a file at its offset, straight into the
// packet it is sent in: a window is resent by reading it again.
type fileBlocks struct{ f io.ReaderAt }

func (b fileBlocks) block(n int64, buf []byte) (int, error) {
	k, err := b.f.ReadAt(buf, (n-1)*int64(len(buf)))
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return k, err
}

// streamBlocks reads blocks in order from a stream (netascii, whose
// offsets on the wire are not the file's), keeping the latest one to
// send again. It serves lock-step transfers only: the block asked for is
// the one kept or the next.
type streamBlocks struct {
	r   io.Reader
	cur int64 // number of the block in buf
	buf []byte
	n   int // bytes of it in buf
}

func (b *streamBlocks) block(n int64, buf []byte) (int, error) {
	if n == b.cur+1 {
		if len(b.buf) != len(buf) {
			b.buf = make([]byte, len(buf))
		}
		k, err := io.ReadFull(b.r, b.buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, err
		}
		b.cur, b.n = n, k
	} else if n != b.cur {
		return 0, fmt.Errorf("tftp: block %d asked of a stream at block %d", n, b.cur)
	}
	return copy(buf, b.buf[:b.n]), nil
}

// sender sends one file to one client from the transfer's own socket:
// up to window blocks, then it waits for the ACK of the last (RFC 7440;
// a window of 1 is RFC 1350's lock-step). An ACK of an earlier block
// means the client lost the one after it: the next window starts there.
// When no ACK comes within timeout the window is sent again, up to
// retries times in a row.
type sender struct {
	conn    *net.UDPConn
	peer    *net.UDPAddr
	src     blocks
	blksize int
	window  int
	timeout time.Duration
	retries int

	pkt     []byte // the DATA packet being sent: header and payload
	in      []byte // a received packet: an ACK or an ERROR
	highest int64  // the highest block sent so far
	resent  int64  // packets sent again (blocks and OACKs)
}

func newSender(conn *net.UDPConn, peer *net.UDPAddr, src blocks, g grant, timeout time.Duration, retries int) *sender {
	return &sender{conn: conn, peer: peer, src: src, blksize: g.blksize, window: g.window,
		timeout: timeout, retries: retries, pkt: make([]byte, 4+g.blksize), in: make([]byte, 4+defaultBlockSize)}
}

// sendOACK sends the OACK and waits for the ACK of block 0 that
// accepts it, sending it again on each timeout.
func (s *sender) sendOACK(oack []byte) error {
	for try := 0; ; try++ {
		if _, err := s.conn.WriteToUDP(oack, s.peer); err != nil {
			return fmt.Errorf("tftp: send OACK: %w", err)
		}
		deadline := time.Now().Add(s.timeout)
		for {
			ack, err := s.readAck(deadline)
			if isTimeout(err) {
				break
			}
			if err != nil {
				return err
			}
			if ack == 0 {
				return nil
			}
		}
		if try >= s.retries {
			return errTimeout
		}
		s.resent++
	}
}

// run sends the file from block 1 until the client has acknowledged the
// last block, and returns the bytes the client acknowledged.
func (s *sender) run() (int64, error) {
	var acked int64 // the highest block the client acknowledged
	last, lastLen := int64(-1), 0
	tries := 0
	restarted := int64(-1) // the ACK the window last restarted after, on a loss
	for {
		if last > 0 && acked == last {
			return (last-1)*int64(s.blksize) + int64(lastLen), nil
		}
		sent, err := s.sendWindow(acked, &last, &lastLen)
		if err != nil {
			return acked * int64(s.blksize), err
		}
		ack, err := s.awaitAck(acked, sent, s.window > 1 && restarted != acked)
		switch {
		case isTimeout(err):
			if tries++; tries > s.retries {
				return acked * int64(s.blksize), errTimeout
			}
		case err != nil:
			return acked * int64(s.blksize), err
		default:
			if ack > acked {
				acked, tries = ack, 0
			}
			if ack < sent { // a loss: the window restarts after ack
				restarted = ack
			}
		}
	}
}

// sendWindow sends the blocks after acked, up to window of them or the
// last, and returns the number of the last one sent. last is set once
// the final (short) block has been read.
func (s *sender) sendWindow(acked int64, last *int64, lastLen *int) (int64, error) {
	n := acked
	for n < acked+int64(s.window) && (*last < 0 || n < *last) {
		n++
		k, err := s.src.block(n, s.pkt[4:])
		if err != nil {
			return 0, fmt.Errorf("tftp: read block %d: %w", n, err)
		}
		if k < s.blksize {
			*last, *lastLen = n, k
		}
		if n <= s.highest {
			s.resent++
		}
		s.highest = max(s.highest, n)
		binary.BigEndian.PutUint16(s.pkt, opData)
		binary.BigEndian.PutUint16(s.pkt[2:], uint16(n))
		if _, err := s.conn.WriteToUDP(s.pkt[:4+k], s.peer); err != nil {
			return 0, fmt.Errorf("tftp: send block %d: %w", n, err)
		}
	}
	return n, nil
}

// awaitAck waits up to timeout for an ACK of a block in acked..sent and
// returns the block's number. An ACK of acked itself (a duplicate) asks
// for the blocks after it again only when dup is set: in a window of one
// block never, so that duplicates do not double every packet (RFC 1350's
// Sorcerer's Apprentice), and in a wider one once, however many
// duplicates a client sends for one loss; otherwise the timeout sends
// the window again.
func (s *sender) awaitAck(acked, sent int64, dup bool) (int64, error) {
	deadline := time.Now().Add(s.timeout)
	for {
		b, err := s.readAck(deadline)
		if err != nil {
			return 0, err
		}
		ahead := int64(b - uint16(acked)) // wire numbers wrap
		if ahead > sent-acked || (ahead == 0 && !dup) {
			continue // stale, not one of ours, or a duplicate to let pass
		}
		return acked + ahead, nil
	}
}

// readAck returns the block number of the next ACK from the client. It
// skips datagrams from anyone else and anything but ACK and ERROR.
func (s *sender) readAck(deadline time.Time) (uint16, error) {
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	for {
		n, from, err := s.conn.ReadFromUDP(s.in)
		if err != nil {
			return 0, err
		}
		if n < 4 || from.Port != s.peer.Port || !from.IP.Equal(s.peer.IP) {
			continue
		}
		switch binary.BigEndian.Uint16(s.in) {
		case opAck:
			return binary.BigEndian.Uint16(s.in[2:]), nil
		case opError:
			msg, _, _ := bytes.Cut(s.in[4:n], []byte{0})
			return 0, &clientError{code: binary.BigEndian.Uint16(s.in[2:]), msg: sanitize(string(msg))}
		}
	}
}

// fail tells the client the transfer ended, unless the client ended it.
func (s *sender) fail(err error) {
	var ce *clientError
	if errors.As(err, &ce) {
		return
	}
	msg := "transfer failed"
	if errors.Is(err, errTimeout) {
		msg = "timeout"
	}
	s.conn.WriteToUDP(errorPacket(codeNotDefined, msg), s.peer)
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// transfer runs the whole transfer: the OACK if options were granted,
// then the blocks. It returns the bytes the client acknowledged; on
// failure it tells the client, unless the client ended it.
func (s *sender) transfer(oack []option) (int64, error) {
	if len(oack) > 0 {
		if err := s.sendOACK(oackPacket(oack)); err != nil {
			s.fail(err)
			return 0, err
		}
	}
	n, err := s.run()
	if err != nil {
		s.fail(err)
	}
	return n, err
}
