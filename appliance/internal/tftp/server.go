package tftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/internal/limit"
	"github.com/outposthq/outpost/internal/ratelog"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout = time.Second
	DefaultRetries = 5
	// DefaultMaxWindow is the largest window (RFC 7440) granted unless
	// Config.MaxWindow says otherwise: RFC 7440 measured little gain
	// past it, and some clients (tftp-hpa's server code) refuse more.
	DefaultMaxWindow = 64
)

// Config configures the TFTP server.
type Config struct {
	// Root is the directory served, read-only: the artifact directory
	// holding the iPXE binaries. It must exist. Names are looked up below
	// it; nothing outside it can be read, through symlinks either.
	Root string
	// Log receives one line per transfer (keys "client", "file", "bytes",
	// "duration") and per refusal (keys "client", "file", "err"). Nil
	// discards.
	Log *slog.Logger
	// Timeout is how long the server waits for the client to acknowledge
	// a packet before sending it again. Zero means DefaultTimeout, which is
	// what tftpd-hpa uses.
	Timeout time.Duration
	// Retries is how many times a packet is sent again before the
	// transfer is given up. Zero means DefaultRetries.
	Retries int
	// MaxBlockSize caps the block size a client may negotiate with the
	// blksize option, for networks whose path MTU is below the MTU of the
	// interface the request came in on (the server already clamps to
	// that). Zero means no cap beyond the interface MTU; otherwise it must
	// be in 513..65464. On Ethernet with MTU 1500, 1468 avoids IP
	// fragmentation, which some firmware mishandles.
	MaxBlockSize int
	// MaxWindow caps the window (RFC 7440 windowsize: blocks sent before
	// waiting for an ACK) a client may ask for; the OACK grants the
	// smaller of the two. A client that does not ask gets RFC 1350's
	// lock-step, one block per ACK. Zero means DefaultMaxWindow;
	// otherwise it must be in 1..65535, and 1 grants lock-step to every
	// client.
	MaxWindow int
	// MaxTransfers caps the transfers under way at once. A read request
	// past it is refused at once with a TFTP error ("server busy"): a
	// flood of requests that are never acknowledged, each holding a
	// socket and a file for Timeout × (Retries+1), cannot take the file
	// descriptors the appliance's other servers need. Zero is no cap.
	MaxTransfers int
	// Traces finds the trace of the machine at a client's address
	// (package machinetrace's Index): each read by a traced machine is a
	// tftp.read span. Nil traces nothing.
	Traces Traces
	// Generator makes the files that are not in Root but made per
	// client (GRUB's per-machine configuration). Nil serves Root only.
	Generator Generator
}

// Traces finds the trace a machine's requests belong to, by the
// machine's address.
type Traces interface {
	ForAddr(addr netip.Addr) (machinetrace.Trace, error)
}

// Server is a read-only TFTP server for one directory. Serve may be called
// for several sockets at once.
type Server struct {
	root  *os.Root
	log   *slog.Logger
	cfg   Config
	slots *limit.Slots
	// refused logs refusals for being busy, a line per client per
	// minute.
	refused *ratelog.Log
}

// New checks cfg and opens Root. Close releases it.
func New(cfg Config) (*Server, error) {
	if cfg.Root == "" {
		return nil, errors.New("tftp: Config.Root is required")
	}
	if cfg.Timeout < 0 || cfg.Retries < 0 {
		return nil, errors.New("tftp: Config.Timeout and Config.Retries must not be negative")
	}
	if cfg.MaxTransfers < 0 {
		return nil, errors.New("tftp: Config.MaxTransfers must not be negative")
	}
	if cfg.MaxBlockSize != 0 && (cfg.MaxBlockSize <= 512 || cfg.MaxBlockSize > 65464) {
		return nil, fmt.Errorf("tftp: Config.MaxBlockSize %d is not in 513..65464", cfg.MaxBlockSize)
	}
	if cfg.MaxWindow < 0 || cfg.MaxWindow > maxWindow {
		return nil, fmt.Errorf("tftp: Config.MaxWindow %d is not in 1..%d", cfg.MaxWindow, maxWindow)
	}
	if cfg.MaxWindow == 0 {
		cfg.MaxWindow = DefaultMaxWindow
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("tftp: root: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{root: root, log: log, cfg: cfg, slots: limit.New(cfg.MaxTransfers, 0),
		refused: ratelog.New(ratelog.Config{Log: log, Level: slog.LevelWarn, Message: "tftp: busy, read request refused", Counter: busy}),
	}, nil
}

// Close releases Root. Requests after Close are refused. It is safe to
// call more than once.
func (s *Server) Close() error {
	return s.root.Close()
}

// Listen binds a UDP socket on addr ("host:port") for Serve. Unlike a
// plain net.ListenUDP it also asks the kernel, at once, to report each
// datagram's destination address and interface: Serve reads the
// interface's MTU from that to bound blksize, and a request that arrived
// before Serve had asked would be held to 512-byte blocks.
func Listen(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen: %w", err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("tftp: listen: %w", err)
	}
	if err := enablePacketInfo(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tftp: listen %s: %w", conn.LocalAddr(), err)
	}
	return conn, nil
}

// ListenAndServe binds addr with Listen and serves on it until ctx ends.
// Binding errors are returned at once.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	conn, err := Listen(addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, conn)
}

// Serve answers TFTP requests arriving on conn until ctx ends, then stops
// taking requests, waits for the transfers under way (each ends within
// Timeout × (Retries+1) if its client is gone), closes conn and returns
// nil. Each transfer uses its own socket, on the address the request was
// sent to, as the protocol requires. conn should be a *net.UDPConn, best
// from Listen: then replies come from the address the request came to and
// blksize is clamped to the MTU of the interface it came in on.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	in := newInbox(conn)
	var wg sync.WaitGroup
	defer wg.Wait()
	buf := make([]byte, maxRequest)
	for {
		n, from, err := in.read(buf)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, net.ErrClosed):
			return fmt.Errorf("tftp: serve %s: %w", conn.LocalAddr(), err)
		case err != nil:
			s.log.Debug("tftp: read request", "err", err)
			continue
		}
		req, err := parseRequest(buf[:n])
		if err != nil {
			s.log.Debug("tftp: not a request", "client", from.peer.String(), "bytes", n)
			continue
		}
		wg.Go(func() {
			if req.op == opWRQ {
				s.write(conn, req, from)
				return
			}
			s.read(conn, req, from)
		})
	}
}

// Errors sent to clients; their text is the TFTP error message.
var (
	errNotFound = errors.New("file not found")
	errDenied   = errors.New("access violation")
	errReadOnly = errors.New("access violation: read-only server")
	errBusy     = errors.New("server busy, retry later")
)

// write refuses a write request.
func (s *Server) write(conn net.PacketConn, req request, from origin) {
	s.log.Warn("tftp: write refused", "client", from.peer.String(), "file", sanitize(req.name),
		"err", "read-only server")
	s.sendError(conn, from, codeAccessViolation, errReadOnly.Error())
}
