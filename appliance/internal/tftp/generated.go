package tftp

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"net/netip"
)

// Generator makes files that are not in Root, per client: the GRUB
// configuration a machine booting through shim and GRUB reads
// (grub/<MAC>.cfg), which says what that machine boots now.
type Generator interface {
	// Generate returns the content of the file name (a clean path
	// relative to Root, as localName makes it) for the client at client,
	// which sent its request to local, and true; or false when it makes
	// no such file, and the name is looked up in Root. An error refuses
	// the request (access violation); the client is told nothing more.
	Generate(ctx context.Context, client, local netip.Addr, name string) ([]byte, bool, error)
}

// source is what a read request is served from: a file below Root or a
// generated one.
type source struct {
	at    io.ReaderAt
	r     io.Reader // the same bytes from the start, for netascii
	size  int64
	close func() error
}

// openSource opens what req names for from: a generated file when
// Config.Generator makes one, else the file below Root.
func (s *Server) openSource(req request, from origin) (source, error) {
	if s.cfg.Generator != nil {
		rel, err := localName(req.name)
		if err != nil {
			return source{}, err
		}
		client, _ := netip.AddrFromSlice(from.peer.IP)
		local, _ := netip.AddrFromSlice(from.local)
		data, ok, err := s.cfg.Generator.Generate(context.Background(), client.Unmap(), local.Unmap(), rel)
		if err != nil {
			return source{}, fmt.Errorf("tftp: generate %s: %w", rel, err)
		}
		if ok {
			return source{at: bytes.NewReader(data), r: bytes.NewReader(data), size: int64(len(data)), close: func() error { return nil }}, nil
		}
	}
	f, size, err := s.open(req.name)
	if err != nil {
		return source{}, err
	}
	return source{at: f, r: f, size: size, close: f.Close}, nil
}
