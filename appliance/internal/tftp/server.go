package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/internal/limit"
	"github.com/outposthq/outpost/internal/ratelog"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout = time.Second
	DefaultRetries = 5
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
// datagram's destination address and interface: pin/tftp reads the
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
	if uc, ok := conn.(*net.UDPConn); ok {
		// pin/tftp does this too, but only once its goroutine runs; see
		// Listen. An error here is pin/tftp's to handle.
		_ = enablePacketInfo(uc)
	}
	ts := tftp.NewServer(
		func(name string, rf io.ReaderFrom) error { return s.read(conn, name, rf) },
		func(name string, wt io.WriterTo) error { return s.write(conn, name, wt) },
	)
	ts.SetTimeout(s.cfg.Timeout)
	ts.SetRetries(s.cfg.Retries)
	// Send again as soon as Timeout has passed: pin/tftp otherwise sleeps
	// up to a further second first.
	ts.SetBackoff(func(int) time.Duration { return 0 })
	if s.cfg.MaxBlockSize > 0 {
		ts.SetBlockSize(s.cfg.MaxBlockSize)
	}
	done := make(chan error, 1)
	go func() { done <- ts.Serve(conn) }()
	select {
	case <-ctx.Done():
		ts.Shutdown() // closes conn, waits for transfers
		<-done
		conn.Close()
		return nil
	case err := <-done:
		conn.Close()
		return fmt.Errorf("tftp: serve %s: %w", conn.LocalAddr(), err)
	}
}

// transfer is what pin/tftp's transfers (both directions) tell about their
// peer.
type transfer interface {
	RemoteAddr() net.UDPAddr
	LocalIP() net.IP
}

// Errors sent to clients; their text is the TFTP error message.
var (
	errNotFound = errors.New("file not found")
	errDenied   = errors.New("access violation")
	errReadOnly = errors.New("access violation: read-only server")
	errBusy     = errors.New("server busy, retry later")
)

// read serves one read request, within MaxTransfers.
func (s *Server) read(conn net.PacketConn, name string, rf io.ReaderFrom) error {
	t, _ := rf.(transfer)
	if ok, _ := s.slots.Acquire(""); !ok {
		s.refused.Record(context.Background(), clientHost(t), slog.String("file", sanitize(name)), slog.Int("max_transfers", s.cfg.MaxTransfers))
		s.sendError(conn, t, codeNotDefined, errBusy.Error())
		return errBusy
	}
	defer s.slots.Release("")
	transfers.Inc()
	defer transfers.Dec()
	span := s.startSpan(t, name)
	n, err := s.serveRead(conn, t, name, rf)
	endSpan(span, n, err)
	return err
}

// serveRead sends the file a read request names and returns how many
// bytes it sent.
func (s *Server) serveRead(conn net.PacketConn, t transfer, name string, rf io.ReaderFrom) (int64, error) {
	start := time.Now()
	log := s.log.With("client", clientAddr(t), "file", sanitize(name))
	f, size, err := s.open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			log.Info("tftp: file not found")
			return 0, errNotFound
		}
		log.Warn("tftp: read refused", "err", err)
		s.sendError(conn, t, codeAccessViolation, errDenied.Error())
		return 0, errDenied
	}
	defer f.Close()
	if ot, ok := rf.(tftp.OutgoingTransfer); ok {
		ot.SetSize(size) // tsize, if the client asked for it
	}
	n, err := rf.ReadFrom(f)
	if err != nil {
		// pin/tftp has already sent the client an error. UEFI firmware
		// aborts its first request on purpose (it only wanted tsize).
		level := slog.LevelWarn
		if strings.Contains(err.Error(), "User aborted") {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "tftp: transfer failed", "bytes", n, "duration", time.Since(start), "err", err)
		return n, err
	}
	log.Info("tftp: sent", "bytes", n, "duration", time.Since(start))
	return n, nil
}

// open opens name below Root for reading. It returns an error wrapping
// fs.ErrNotExist when a well-formed name names nothing.
func (s *Server) open(name string) (*os.File, int64, error) {
	rel, err := localName(name)
	if err != nil {
		return nil, 0, err
	}
	// O_NONBLOCK: opening a FIFO must not wait for a writer. It changes
	// nothing for regular files.
	f, err := s.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("not a regular file: %s", fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

// write refuses a write request.
func (s *Server) write(conn net.PacketConn, name string, wt io.WriterTo) error {
	t, _ := wt.(transfer)
	s.log.Warn("tftp: write refused", "client", clientAddr(t), "file", sanitize(name),
		"err", "read-only server")
	s.sendError(conn, t, codeAccessViolation, "access violation: read-only server")
	return errReadOnly
}

// clientHost is the client's address without its port: a flood comes
// from many ports.
func clientHost(t transfer) string {
	if t == nil {
		return ""
	}
	a := t.RemoteAddr()
	return a.IP.String()
}

func clientAddr(t transfer) string {
	if t == nil {
		return ""
	}
	a := t.RemoteAddr()
	return a.String()
}
