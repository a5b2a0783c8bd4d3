package httpboot

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"

	"github.com/outposthq/outpost/internal/httpserve"
)

// An artifact served behind the boot server's guards (package
// httpserve: a deadline per write, connection caps) reaches the TCP
// connection as the file itself, so that the kernel sends it from the
// page cache (sendfile(2)): no wrapper on the way hides io.ReaderFrom or
// the *os.File. Only the first bytes, which net/http writes with the
// header, may be copied.
func TestArtifactSendfile(t *testing.T) {
	parallel(t)
	checkSendfile(t, &artifactServer{fixture: newFixture(t)}, netip.Addr{})
}

// checkSendfile serves an artifact from a's handler on a real socket and
// checks that it reaches the connection as the file.
// The connection says it comes from from, if valid.
func checkSendfile(t *testing.T, a *artifactServer, from netip.Addr) {
	t.Helper()
	data := a.write(t, "image.raw", randomBytes(8<<20))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &fileListener{Listener: ln, from: from}
	srv := httpserve.New(httpserve.Config{Name: "boot", Handler: a.handler,
		Shape: func(*http.Request) httpserve.Shape { return httpserve.Small }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, rec, nil) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	}()
	a.url = "http://" + ln.Addr().String()

	res, body := a.request(t, "GET", "/artifacts/image.raw")
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET = %d, %d bytes; want 200 and the %d bytes of the file", res.StatusCode, len(body), len(data))
	}
	const copied = 512 // net/http's sniffLen
	if got := rec.fromFile.Load(); got < int64(len(data)-copied) {
		t.Errorf("%d of %d bytes reached the connection as the file; want all but at most %d", got, len(data), copied)
	}
}

// fileListener counts the bytes its connections' ReadFrom took from a
// file, or a limited reader of one (as http.ServeContent passes).
type fileListener struct {
	net.Listener
	fromFile atomic.Int64
	// from, if valid, is the address its connections say they come
	// from (a machine's, on the loopback).
	from netip.Addr
}

func (l *fileListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &fileConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

func (c *fileConn) RemoteAddr() net.Addr {
	if c.l.from.IsValid() {
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.l.from, 40000))
	}
	return c.TCPConn.RemoteAddr()
}

type fileConn struct {
	*net.TCPConn
	l *fileListener
}

func (c *fileConn) ReadFrom(r io.Reader) (int64, error) {
	n, err := c.TCPConn.ReadFrom(r)
	src := r
	if lr, ok := r.(*io.LimitedReader); ok {
		src = lr.R
	}
	if _, ok := src.(*os.File); ok {
		c.l.fromFile.Add(n)
	}
	return n, err
}
