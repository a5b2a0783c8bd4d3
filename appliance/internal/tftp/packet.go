package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// TFTP opcodes (RFC 1350; OACK from RFC 2347).
const (
	opRRQ  = 1
	opWRQ  = 2
	opData = 3
	opAck  = 4
	opOACK = 6
)

// Option limits.
const (
	// defaultBlockSize is RFC 1350's block size, used unless blksize
	// is negotiated.
	defaultBlockSize = 512
	// maxBlockSize is the largest blksize RFC 2348 allows.
	maxBlockSize = 65464
	// minBlockSize is the smallest blksize RFC 2348 allows.
	minBlockSize = 8
	// maxWindow is the largest windowsize RFC 7440 allows.
	maxWindow = 65535
)

// errBadPacket is a datagram on the listening socket that is not a well
// formed read or write request.
var errBadPacket = errors.New("tftp: not a read or write request")

// request is a parsed read (RRQ) or write (WRQ) request.
type request struct {
	op   uint16
	name string
	// mode is the transfer mode in lower case: "octet" or "netascii"
	// (anything else is served as octet).
	mode string
	// opts holds the RFC 2347 options, names in lower case (option names
	// are case-insensitive); the last of two with one name wins.
	opts map[string]string
}

// parseRequest parses a read or write request: opcode, then NUL
// terminated file name, mode and option name/value pairs.
func parseRequest(p []byte) (request, error) {
	if len(p) < 2 {
		return request{}, errBadPacket
	}
	op := binary.BigEndian.Uint16(p)
	if op != opRRQ && op != opWRQ {
		return request{}, errBadPacket
	}
	fields := bytes.Split(p[2:], []byte{0})
	// Every field ends with a NUL, so the last element is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return request{}, errBadPacket
	}
	fields = fields[:len(fields)-1]
	req := request{op: op, name: string(fields[0]), mode: strings.ToLower(string(fields[1]))}
	for i := 2; i+1 < len(fields); i += 2 {
		if req.opts == nil {
			req.opts = map[string]string{}
		}
		req.opts[strings.ToLower(string(fields[i]))] = string(fields[i+1])
	}
	return req, nil
}

// option is one option granted in an OACK.
type option struct{ name, value string }

// grant is what the server grants a read request.
type grant struct {
	blksize int
	window  int
	oack    []option // empty: no OACK, the transfer starts with DATA 1
}

// negotiate decides the block size and window of a read of a file of
// size bytes, and the OACK that tells them (RFC 2347): blksize (RFC 2348)
// capped at maxBlk, tsize (RFC 2349), windowsize (RFC 7440) capped at
// maxWin. Options it does not know, and values it cannot parse or that
// are below their range, are left out of the OACK, so the client falls
// back to the default. A netascii transfer is sent lock-step and without
// tsize, since its size on the wire is not the file's.
func negotiate(req request, maxBlk, maxWin int, size int64) grant {
	g := grant{blksize: defaultBlockSize, window: 1}
	netascii := req.mode == "netascii"
	if n, ok := intOption(req.opts, "blksize", minBlockSize); ok {
		g.blksize = min(n, maxBlk)
		g.oack = append(g.oack, option{"blksize", strconv.Itoa(g.blksize)})
	}
	if _, ok := req.opts["tsize"]; ok && !netascii {
		g.oack = append(g.oack, option{"tsize", strconv.FormatInt(size, 10)})
	}
	if n, ok := intOption(req.opts, "windowsize", 1); ok && !netascii {
		g.window = min(n, maxWin)
		g.oack = append(g.oack, option{"windowsize", strconv.Itoa(g.window)})
	}
	return g
}

// intOption returns the option name as a number of at least lo. Values
// past an int are taken as the largest int: callers cap them anyway.
func intOption(opts map[string]string, name string, lo int) (int, bool) {
	v, ok := opts[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-") {
		return int(^uint(0) >> 1), true
	}
	if err != nil || n < lo {
		return 0, false
	}
	return n, true
}

// oackPacket builds an OACK packet.
func oackPacket(opts []option) []byte {
	p := binary.BigEndian.AppendUint16(nil, opOACK)
	for _, o := range opts {
		p = append(append(p, o.name...), 0)
		p = append(append(p, o.value...), 0)
	}
	return p
}
