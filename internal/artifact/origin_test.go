package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// origin serves one artifact over a real HTTP server, with a fault to
// inject into each of its next answers, and counts what it was asked and
// what it sent.
type origin struct {
	t    *testing.T
	data []byte
	srv  *httptest.Server
	stop chan struct{} // closed when the test ends: stalled answers end

	mu       sync.Mutex
	faults   []fault  // the next answers' faults, in order
	ranges   []string // each request's Range header ("" for none)
	ifRanges []string // each request's If-Range header
	sent     []int64  // each answer's body bytes written
}

// fault is what goes wrong with one answer of an origin.
type fault struct {
	status      int           // answer this status, with no artifact
	cutAfter    int64         // > 0: break the connection after this many body bytes
	stallAfter  int64         // > 0: send this many body bytes, then nothing until the client goes
	ignoreRange bool          // answer 200 and the whole artifact to a Range request
	shiftRange  int64         // answer a Range request from this many bytes earlier, saying so
	flip        bool          // flip every bit of the artifact's middle byte
	extra       int           // append this many bytes to the artifact, sent chunked (no length)
	hold        chan struct{} // wait for it to close before answering
}

func newOrigin(t *testing.T, data []byte, faults ...fault) *origin {
	t.Helper()
	o := &origin{t: t, data: data, stop: make(chan struct{}), faults: faults}
	o.srv = httptest.NewServer(o)
	t.Cleanup(o.srv.Close)
	t.Cleanup(func() { close(o.stop) }) // runs first: stalled handlers return
	return o
}

// source is o as a fetch's source.
func (o *origin) source(name string) Source {
	return Source{Name: name, URL: o.srv.URL + "/a", Client: o.srv.Client()}
}

// requests returns the Range header of each request so far.
func (o *origin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ranges...)
}

// sentBytes returns the body bytes o wrote, in all.
func (o *origin) sentBytes() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var n int64
	for _, s := range o.sent {
		n += s
	}
	return n
}

// answers returns the body bytes of each answer.
func (o *origin) answers() []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]int64(nil), o.sent...)
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.ranges = append(o.ranges, r.Header.Get("Range"))
	o.ifRanges = append(o.ifRanges, r.Header.Get("If-Range"))
	o.sent = append(o.sent, 0)
	i := len(o.sent) - 1
	var f fault
	if len(o.faults) > 0 {
		f, o.faults = o.faults[0], o.faults[1:]
	}
	o.mu.Unlock()
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-r.Context().Done():
			return
		case <-o.stop:
			return
		}
	}
	if f.status != 0 {
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	data := o.data
	if f.flip {
		data = bytes.Clone(data)
		data[len(data)/2] ^= 0xff
	}
	cw := &cutWriter{ResponseWriter: w, o: o, i: i, cut: f.cutAfter, stall: f.stallAfter, done: r.Context().Done()}
	switch from, ok := rangeFrom(r.Header.Get("Range")); {
	case f.extra > 0:
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush() // no length: chunked
		cw.Write(append(bytes.Clone(data), make([]byte, f.extra)...))
		return
	case f.ignoreRange:
		r.Header.Del("Range")
	case f.shiftRange > 0 && ok:
		from = max(0, from-f.shiftRange)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(data)-1, len(data)))
		w.Header().Set("Content-Length", strconv.Itoa(len(data)-int(from)))
		w.WriteHeader(http.StatusPartialContent)
		cw.Write(data[from:])
		return
	}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(data))
}

// rangeFrom reads "bytes=<n>-".
func rangeFrom(h string) (int64, bool) {
	s, ok := strings.CutPrefix(h, "bytes=")
	if !ok || !strings.HasSuffix(s, "-") {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(s, "-"), 10, 64)
	return n, err == nil
}

var errCut = errors.New("origin: connection cut")

// cutWriter counts an answer's body bytes and breaks or stalls the
// answer after a number of them.
type cutWriter struct {
	http.ResponseWriter
	o          *origin
	i          int
	n          int64
	cut, stall int64
	done       <-chan struct{}
}

func (c *cutWriter) Write(p []byte) (int, error) {
	limit := max(c.cut, c.stall)
	if limit <= 0 || c.n+int64(len(p)) < limit {
		n, err := c.ResponseWriter.Write(p)
		c.count(n)
		return n, err
	}
	n, _ := c.ResponseWriter.Write(p[:limit-c.n])
	c.count(n)
	rc := http.NewResponseController(c.ResponseWriter)
	rc.Flush()
	if c.cut > 0 {
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
		return n, errCut
	}
	select { // stalled: until the client gives up
	case <-c.done:
	case <-c.o.stop:
	}
	return n, errCut
}

func (c *cutWriter) count(n int) {
	c.n += int64(n)
	c.o.mu.Lock()
	c.o.sent[c.i] += int64(n)
	c.o.mu.Unlock()
}

// blob returns n random bytes and their digest.
func blob(n int) ([]byte, Digest) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b, digestOf(b)
}

func digestOf(b []byte) Digest {
	s := sha256.Sum256(b)
	return Digest(hex.EncodeToString(s[:]))
}

// openStore opens a store in a fresh directory.
func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// contents returns the bytes the store holds as d, or fails the test.
func contents(t *testing.T, s *Store, d Digest) []byte {
	t.Helper()
	f, _, err := s.Open(d)
	if err != nil {
		t.Fatalf("open %s: %v", d.Short(), err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fetch is s.Fetch with the test's context.
func fetch(t *testing.T, s *Store, src Source, d Digest, size int64, opt FetchOptions) (int64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return s.Fetch(ctx, src, d, size, opt)
}
