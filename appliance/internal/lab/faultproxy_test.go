package lab

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer echoes every connection on loopback.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

func TestFaultProxy(t *testing.T) {
	p := StartFaultProxy(t, "127.0.0.1:0", echoServer(t))
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// readAll reads what arrives before the connection ends or goes
	// quiet for a while.
	readAll := func(c net.Conn, quiet time.Duration) ([]byte, bool) {
		var got bytes.Buffer
		buf := make([]byte, 1024)
		for {
			c.SetReadDeadline(time.Now().Add(quiet))
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				ne, ok := err.(net.Error)
				return got.Bytes(), !(ok && ne.Timeout()) // closed, not quiet
			}
		}
	}
	msg := bytes.Repeat([]byte("outpost "), 16) // 128 bytes

	c := dial()
	c.Write(msg)
	echo := make([]byte, len(msg))
	if _, err := io.ReadFull(c, echo); err != nil || !bytes.Equal(echo, msg) {
		t.Fatalf("pass: got %q, %v", echo, err)
	}

	p.SetMode(Blackhole)
	c.Write(msg)
	if got, closed := readAll(c, 300*time.Millisecond); len(got) != 0 || closed {
		t.Errorf("blackhole: got %d bytes, closed %v; want silence on an open connection", len(got), closed)
	}

	p.SetMode(Refuse)
	if _, closed := readAll(c, 5*time.Second); !closed {
		t.Error("refuse left an open connection open")
	}
	if got, closed := readAll(dial(), 5*time.Second); len(got) != 0 || !closed {
		t.Errorf("refuse: a new connection got %d bytes, closed %v", len(got), closed)
	}

	p.SetMode(Pass)
	p.CutAfter(50)
	c = dial()
	c.Write(msg)
	if got, closed := readAll(c, 5*time.Second); len(got) >= len(msg) || !closed {
		t.Errorf("cut after 50 bytes: got %d of %d bytes, closed %v; want the connection cut mid-message", len(got), len(msg), closed)
	}
	p.CutAfter(0)
	p.SetDelay(10 * time.Millisecond)
	c = dial()
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("delay: got %q, %v", got, err)
	}
}
