package tftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/pin/tftp/v3/netascii"
)

// read serves one read request, within MaxTransfers.
func (s *Server) read(conn net.PacketConn, req request, from origin) {
	if ok, _ := s.slots.Acquire(""); !ok {
		s.refused.Record(context.Background(), from.peer.IP.String(), slog.String("file", sanitize(req.name)), slog.Int("max_transfers", s.cfg.MaxTransfers))
		s.sendError(conn, from, codeNotDefined, errBusy.Error())
		return
	}
	defer s.slots.Release("")
	transfers.Inc()
	defer transfers.Dec()
	span := s.startSpan(from.peer, req.name)
	n, err := s.serveRead(conn, req, from)
	endSpan(span, n, err)
}

// serveRead sends the file a read request names, from a socket of its
// own, and returns how many bytes it sent.
func (s *Server) serveRead(conn net.PacketConn, req request, from origin) (int64, error) {
	start := time.Now()
	log := s.log.With("client", from.peer.String(), "file", sanitize(req.name))
	src0, err := s.openSource(req, from)
	if err != nil {
		return 0, s.refuse(conn, from, log, err)
	}
	defer src0.close()
	size := src0.size
	maxBlk := min(from.maxBlock, maxBlockSize)
	if s.cfg.MaxBlockSize > 0 {
		maxBlk = min(maxBlk, s.cfg.MaxBlockSize)
	}
	g := negotiate(req, maxBlk, s.cfg.MaxWindow, size)
	tc, err := net.ListenUDP("udp", &net.UDPAddr{IP: from.local, Zone: from.zone})
	if err != nil {
		log.Warn("tftp: open a transfer socket", "err", err)
		s.sendError(conn, from, codeNotDefined, "server error")
		return 0, fmt.Errorf("tftp: transfer socket: %w", err)
	}
	defer tc.Close()
	var src blocks = fileBlocks{src0.at}
	if req.mode == "netascii" {
		src = &streamBlocks{r: netascii.ToReader(src0.r)}
	}
	snd := newSender(tc, from.peer, src, g, s.cfg.Timeout, s.cfg.Retries)
	n, err := snd.transfer(g.oack)
	log = log.With("bytes", n, "duration", time.Since(start), "blksize", g.blksize, "window", g.window, "resent", snd.resent)
	resent.Add(float64(snd.resent))
	if err != nil {
		log.Log(context.Background(), failLevel(err), "tftp: transfer failed", "err", err)
		return n, err
	}
	log.Info("tftp: sent")
	return n, nil
}

// failLevel is how loudly a failed transfer is logged. UEFI firmware
// aborts its first request on purpose (it only wanted tsize): that is
// no warning.
func failLevel(err error) slog.Level {
	var ce *clientError
	if errors.As(err, &ce) && (ce.code == codeOptionRefused || strings.Contains(ce.msg, "User aborted")) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// refuse answers a read request whose file cannot be served, and returns
// the error the client was sent.
func (s *Server) refuse(conn net.PacketConn, from origin, log *slog.Logger, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("tftp: file not found")
		s.sendError(conn, from, codeFileNotFound, errNotFound.Error())
		return errNotFound
	}
	log.Warn("tftp: read refused", "err", err)
	s.sendError(conn, from, codeAccessViolation, errDenied.Error())
	return errDenied
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
