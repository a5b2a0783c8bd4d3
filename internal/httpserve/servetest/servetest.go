// Package servetest has clients that misbehave on purpose, for the tests
// of the servers package httpserve builds: one that trickles a request
// body a byte at a time, and reads of what a server answers it.
package servetest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// Tick is how often a Slow client sends a byte of its body.
const Tick = 20 * time.Millisecond

// Slow is a connection that sent a request's headers and sends its body
// a byte every Tick, until the body is sent, the connection fails or the
// test ends.
type Slow struct {
	Name string
	conn net.Conn
	stop chan struct{}
}

// Trickle opens a connection to addr and starts sending a request with a
// body of size bytes (announced in Content-Length); header lines
// ("Name: value\r\n") are added to the request's.
func Trickle(t testing.TB, name, addr, method, path, header string, size int) *Slow {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Slow{Name: name, conn: c, stop: make(chan struct{})}
	t.Cleanup(func() { close(s.stop); c.Close() })
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
		method, path, addr, size, header)
	go s.send(size)
	return s
}

func (s *Slow) send(size int) {
	tick := time.NewTicker(Tick)
	defer tick.Stop()
	for range size {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		if _, err := s.conn.Write([]byte(" ")); err != nil {
			return
		}
	}
}

// Answer reads the response before deadline and then what follows it:
// the response's status and body, and whether the server closed the
// connection after it. A response that does not come is an error.
func (s *Slow) Answer(deadline time.Time) (status int, body string, closed bool, err error) {
	s.conn.SetReadDeadline(deadline)
	br := bufio.NewReader(s.conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", false, fmt.Errorf("%s: no answer: %w", s.Name, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	var ne net.Error
	closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return resp.StatusCode, string(raw), closed, nil
}
