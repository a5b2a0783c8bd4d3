package httpserve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/outposthq/outpost/internal/limit"
	"github.com/outposthq/outpost/internal/ratelog"
)

// listener caps the connections it hands out: one past a cap is closed
// as soon as it is accepted, before it costs more than its descriptor
// for an instant, and counted.
type listener struct {
	net.Listener
	slots   *limit.Slots
	m       serverMetrics
	refused *ratelog.Log
}

// Accept returns the next connection within the caps.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c.RemoteAddr())
		ok, why := l.slots.Acquire(src)
		if ok {
			l.m.open.Inc()
			return &conn{Conn: c, release: func() { l.slots.Release(src); l.m.open.Dec() }}, nil
		}
		if why == limit.Source {
			l.m.refusedSource.Inc()
		} else {
			l.m.refusedTotal.Inc()
		}
		if tc, isTCP := c.(*net.TCPConn); isTCP {
			_ = tc.SetLinger(0) // a reset: no TIME_WAIT left behind
		}
		c.Close()
		l.refused.Record(context.Background(), src, slog.String("cap", string(why)))
	}
}

// sourceOf is the address a connection's cap per source counts under.
func sourceOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return Source(a.String())
}

// Source is a client's address ("host:port", as http.Request.RemoteAddr)
// without its port: what caps and rate-limited logs count per source,
// since one client connects from many ports.
func Source(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// conn gives its slot back when it is closed, once. It keeps what
// net/http looks for on a TCP connection: ReadFrom (sendfile for
// artifacts) and CloseWrite.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
