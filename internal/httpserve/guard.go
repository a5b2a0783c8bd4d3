package httpserve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Shape is what one route may ask of a connection: how large its body
// may be, and how long it may take to arrive. A server's Config.Shape
// chooses each request's; writes are the same for every route (see
// Limits.WriteTimeout).
type Shape struct {
	// MaxBody is the largest request body, in bytes: one that says it
	// is larger is answered 413 before its handler runs, one that turns
	// out larger fails its handler's read with *http.MaxBytesError.
	MaxBody int64
	// Upload lets the body take up to Limits.UploadTimeout, as long as
	// every Limits.BodyTimeout brings MinProgress bytes of it; without
	// it the whole body must arrive within BodyTimeout.
	Upload bool
}

// The shapes of the routes Outpost serves.
var (
	// Small is a request that carries no body of note: boot scripts,
	// artifacts, metadata, health.
	Small = Shape{MaxBody: 64 << 10}
	// JSON is an API request: a JSON body the API decodes whole.
	JSON = Shape{MaxBody: 4 << 20}
	// Upload is a large body that may take long: an image.
	Upload = Shape{MaxBody: 64 << 30, Upload: true}
)

// WriteChunk is the most a response writes under one write deadline.
const WriteChunk = 128 << 10

// ErrBodyTimeout is the error of a body read that the body deadline
// ended; it wraps the connection's os.ErrDeadlineExceeded.
var ErrBodyTimeout = errors.New("httpserve: the request body did not arrive in time")

// guard applies a request's shape and the server's deadlines around its
// handler.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		shape := s.shape(r)
		rc := http.NewResponseController(w)
		if r.ContentLength > shape.MaxBody {
			if r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
			httpapi.WriteError(w, &errs.Error{Code: httpapi.CodeTooLarge, Field: "body",
				Message: fmt.Sprintf("is %d bytes, more than the limit of %d", r.ContentLength, shape.MaxBody)})
			return
		}
		// Clear the server's backstop deadline: from here on each write
		// has its own (an HTTP/2 stream's would end an idle stream).
		_ = rc.SetWriteDeadline(time.Time{})
		gw := &writer{ResponseWriter: w, rc: rc, s: s, h1: r.ProtoMajor == 1}
		if r.Body != nil && r.Body != http.NoBody {
			gw.body = s.newBody(w, r, rc, shape)
			r.Body = gw.body
		}
		next.ServeHTTP(gw, r)
		if gw.h1 && !gw.hijacked.Load() {
			// What the handler left buffered goes out after it returns.
			_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		}
	})
}

// body is a request body under its deadline.
type body struct {
	io.ReadCloser
	rc     *http.ResponseController
	s      *Server
	upload bool
	end    time.Time // an upload's last deadline
	since  int64     // bytes since the deadline was last moved
	eof    atomic.Bool
}

func (s *Server) newBody(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, shape Shape) *body {
	now := time.Now()
	b := &body{ReadCloser: http.MaxBytesReader(w, r.Body, shape.MaxBody), rc: rc, s: s, upload: shape.Upload,
		end: now.Add(s.uploadTimeout)}
	_ = rc.SetReadDeadline(now.Add(s.bodyTimeout))
	return b
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.upload && n > 0 {
		if b.since += int64(n); b.since >= MinProgress {
			b.since = 0
			_ = b.rc.SetReadDeadline(minTime(time.Now().Add(b.s.bodyTimeout), b.end))
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		if !b.eof.Swap(true) {
			// Read on: the server watches for the client going away.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.s.m.cutBody.Inc()
		err = fmt.Errorf("%w: %w", ErrBodyTimeout, err)
	}
	return n, err
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// writer gives each write of the response its deadline, and closes the
// connection after a response sent before the request's body was read:
// the server would otherwise read (and wait for) the rest of the body
// first, which is how an unauthenticated client trickling a body held a
// connection forever.
type writer struct {
	http.ResponseWriter
	rc       *http.ResponseController
	s        *Server
	h1       bool
	body     *body
	started  bool
	hijacked atomic.Bool
}

func (w *writer) WriteHeader(code int) {
	if !w.started && code >= 200 {
		w.started = true
		if w.h1 && w.body != nil && !w.body.eof.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write writes p in pieces of at most WriteChunk, each within
// WriteTimeout.
func (w *writer) Write(p []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	var done int
	for len(p) > 0 {
		chunk := p[:min(len(p), WriteChunk)]
		w.deadline()
		n, err := w.ResponseWriter.Write(chunk)
		w.cleared(err)
		done += n
		if err != nil {
			return done, err
		}
		p = p[len(chunk):]
	}
	return done, nil
}

// ReadFrom sends src in pieces, each within WriteTimeout, keeping an
// *os.File (or a LimitedReader of one, as http.ServeContent passes)
// what the connection's ReadFrom sees, so that sendfile(2) still
// carries artifacts.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w}, src)
	}
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	from, remain := src, int64(-1)
	outer, limited := src.(*io.LimitedReader)
	if limited {
		from, remain = outer.R, outer.N
	}
	var total int64
	var err error
	for remain != 0 {
		n := int64(WriteChunk)
		if remain > 0 {
			n = min(n, remain)
		}
		w.deadline()
		var m int64
		m, err = rf.ReadFrom(&io.LimitedReader{R: from, N: n})
		w.cleared(err)
		total += m
		if remain > 0 {
			remain -= m
		}
		if err != nil || m < n {
			break
		}
	}
	if limited {
		outer.N = max(remain, 0)
	}
	return total, err
}

func (w *writer) Flush() {
	w.deadline()
	err := w.rc.Flush()
	w.cleared(err)
}

// deadline gives the write about to start its deadline.
func (w *writer) deadline() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.s.writeTimeout))
}

// cleared ends the deadline of a write that returned err: between
// writes there is none, so that a stream may stay quiet.
func (w *writer) cleared(err error) {
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			w.s.m.cutWrite.Inc()
		}
		return
	}
	_ = w.rc.SetWriteDeadline(time.Time{})
}

func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.rc.Hijack()
	if err == nil {
		w.hijacked.Store(true)
	}
	return c, rw, err
}

func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
