package lab

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
	if n := p.Cut(); n != 1 {
		t.Errorf("the proxy counts %d connections cut, want 1", n)
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

// FlipByteAt corrupts one byte of the answer on the next connection only:
// an HTTP server behind the proxy gets the request intact, the client
// gets the body with that byte's bits flipped, and the next connection
// passes unchanged.
func TestFaultProxyFlipByteAt(t *testing.T) {
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = byte(i * 7)
	}
	upload := bytes.Repeat([]byte("request "), 4096) // 32 KiB, past the flip's offset
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got, err := io.ReadAll(r.Body); err != nil || !bytes.Equal(got, upload) {
			http.Error(w, "the request arrived changed", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	p := StartFaultProxy(t, "127.0.0.1:0", strings.TrimPrefix(srv.URL, "http://"))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // a connection a request
	get := func() []byte {
		t.Helper()
		resp, err := client.Post("http://"+p.Addr+"/", "application/octet-stream", bytes.NewReader(upload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %q, %v", resp.Status, b, err)
		}
		return b
	}
	const offset = 20000 // of the answer's stream: its headers, then the body
	tests := []struct {
		name    string
		arm     int64 // -1: FlipByteAt not called
		flipped int   // bytes of the body that differ
		total   int   // Flipped() after
	}{
		{name: "armed", arm: offset, flipped: 1, total: 1},
		{name: "the next connection", arm: -1, total: 1},
		{name: "past the end", arm: 1 << 30, total: 1},
		{name: "after it", arm: -1, total: 1},
		{name: "armed again", arm: offset + 1, flipped: 1, total: 2},
	}
	for _, tt := range tests {
		if tt.arm >= 0 {
			p.FlipByteAt(tt.arm)
		}
		got := get()
		var diff []int
		for i := range body {
			if got[i] != body[i] {
				diff = append(diff, i)
			}
		}
		if len(diff) != tt.flipped || len(got) != len(body) {
			t.Fatalf("%s: %d of %d bytes differ (at %v), want %d", tt.name, len(diff), len(got), diff, tt.flipped)
		}
		for _, i := range diff {
			if got[i] != body[i]^0xff {
				t.Errorf("%s: byte %d is %#x, want %#x", tt.name, i, got[i], body[i]^0xff)
			}
		}
		if n := p.Flipped(); n != tt.total {
			t.Errorf("%s: Flipped() = %d, want %d", tt.name, n, tt.total)
		}
	}
}

// FlipByteAt counts offsets from the first byte the target sends, across
// the proxy's reads: through an echo server, the byte at the offset comes
// back flipped, from the first to the last.
func TestFaultProxyFlipByteAtEcho(t *testing.T) {
	p := StartFaultProxy(t, "127.0.0.1:0", echoServer(t))
	tests := map[string]int64{"first byte": 0, "in a later read": 100 << 10, "last byte": 200<<10 - 1}
	for name, off := range tests {
		t.Run(name, func(t *testing.T) {
			before := p.Flipped()
			p.FlipByteAt(off)
			c, err := net.Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			msg := bytes.Repeat([]byte{0x5a}, 200<<10)
			go c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatal(err)
			}
			want := bytes.Clone(msg)
			want[off] ^= 0xff
			if !bytes.Equal(got, want) {
				t.Errorf("the echo differs otherwise than at byte %d", off)
			}
			if n := p.Flipped() - before; n != 1 {
				t.Errorf("Flipped() grew by %d, want 1", n)
			}
		})
	}
}
