package httpserve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpserve/servetest"
	"github.com/outposthq/outpost/internal/testwait"
)

// waitTimeout bounds every wait; waits end when their condition holds.
const waitTimeout = time.Minute

type testServer struct {
	url     string
	addr    string
	metrics *Metrics
}

// start serves h on 127.0.0.1 with limits until the test ends.
func start(t *testing.T, limits Limits, shape func(*http.Request) Shape, h http.Handler) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	s := New(Config{Name: "test", Handler: h, Limits: limits, Shape: shape, Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), metrics: m}
}

// requireToken answers 401 without reading the body unless the request
// has a token, then reads the body as a JSON API does.
func requireToken() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ok" {
			httpapi.WriteError(w, &errs.Error{Code: httpapi.CodeUnauthorized, Message: "token"})
			return
		}
		raw, err := httpapi.ReadBody(r, 1<<30)
		if err != nil {
			e, _ := errs.AsError(err)
			httpapi.WriteError(w, e)
			return
		}
		fmt.Fprintf(w, "read %d bytes", len(raw))
	})
}

// answer is the slow client's answer, which must come and close the
// connection.
func answer(t *testing.T, s *servetest.Slow) (int, string) {
	t.Helper()
	code, body, closed, err := s.Answer(time.Now().Add(waitTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if !closed {
		t.Errorf("%s: the server kept the connection open after answering %d", s.Name, code)
	}
	return code, body
}

// get is a normal client's request, which must be served meanwhile.
func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/v1/x", strings.NewReader(`{}`))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A client that trickles a body without a token gets its 401 at once and
// loses the connection; it does not hold it while the server reads the
// body it will never use. A client trickling a body with a token is cut
// by the body deadline (408). A normal client is served meanwhile.
func TestTrickledBody(t *testing.T) {
	ts := start(t, Limits{BodyTimeout: conf.Duration(500 * time.Millisecond)}, nil, requireToken())
	anon := servetest.Trickle(t, "without a token", ts.addr, "POST", "/v1/x", "", 1<<10)
	authed := servetest.Trickle(t, "with a token", ts.addr, "POST", "/v1/x", "Authorization: Bearer ok\r\n", 1<<20)
	if code, body := get(t, ts.url, "Authorization", "Bearer ok"); code != http.StatusOK || body != "read 2 bytes" {
		t.Fatalf("a normal client meanwhile: %d %q", code, body)
	}

	if code, _ := answer(t, anon); code != http.StatusUnauthorized {
		t.Errorf("trickling without a token: %d, want 401", code)
	}
	if code, body := answer(t, authed); code != http.StatusRequestTimeout || !strings.Contains(body, `"timeout"`) {
		t.Errorf("trickling with a token: %d %s, want 408", code, body)
	}
	if n := testutil.ToFloat64(ts.metrics.cut.WithLabelValues("test", "body")); n != 1 {
		t.Errorf("body deadline cuts = %v, want 1", n)
	}
}

// An upload runs past the body deadline as long as every deadline brings
// MinProgress bytes; one that stops is cut.
func TestUploadProgress(t *testing.T) {
	window := time.Second
	shape := func(*http.Request) Shape { return Upload }
	ts := start(t, Limits{BodyTimeout: conf.Duration(window)}, shape, requireToken())

	// Over one and a half windows, a piece every fifth of a window.
	pieces := 8
	pr, pw := io.Pipe()
	go func() {
		tick := time.NewTicker(window / 5)
		defer tick.Stop()
		piece := strings.Repeat("x", MinProgress)
		for range pieces {
			<-tick.C
			if _, err := io.WriteString(pw, piece); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", ts.url+"/v1/upload", pr)
	req.Header.Set("Authorization", "Bearer ok")
	started := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("read %d bytes", pieces*MinProgress); resp.StatusCode != http.StatusOK || string(b) != want {
		t.Fatalf("a progressing upload over %v: %d %q, want 200 %q", time.Since(started), resp.StatusCode, b, want)
	}
	if took := time.Since(started); took <= window {
		t.Fatalf("the upload took %v, not past the body deadline: the test proves nothing", took)
	}

	stalled := servetest.Trickle(t, "a trickling upload", ts.addr, "POST", "/v1/x", "Authorization: Bearer ok\r\n", 1<<20)
	if code, _ := answer(t, stalled); code != http.StatusRequestTimeout {
		t.Errorf("a trickling upload: %d, want 408", code)
	}
}

// A client that stops reading a long response is cut within the write
// deadline, whether the response is written (a stream) or sent from a
// file (sendfile); a stream quiet for longer than the deadline is not;
// a normal client is served meanwhile.
func TestUnreadResponse(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(256 << 20) // far more than loopback's socket buffers
	f.Close()

	cut := make(chan string, 2)
	quiet := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		rec := &readFromRecorder{ResponseWriter: w}
		http.ServeFile(rec, r, big)
		if rec.err != nil {
			cut <- "file"
		}
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		piece := make([]byte, 64<<10)
		for {
			if _, err := w.Write(piece); err != nil {
				cut <- "stream"
				return
			}
		}
	})
	mux.HandleFunc("GET /quiet", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-quiet
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("POST /v1/x", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	ts := start(t, Limits{WriteTimeout: conf.Duration(300 * time.Millisecond)}, nil, mux)

	for _, path := range []string{"/file", "/stream"} {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	}
	q, err := http.Get(ts.url + "/quiet")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Body.Close()
	br := bufio.NewReader(q.Body)
	if line, _ := br.ReadString('\n'); line != "first\n" {
		t.Fatalf("quiet stream: %q", line)
	}

	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case what := <-cut:
			got[what] = true
		case <-time.After(waitTimeout):
			t.Fatalf("not cut after %v: only %v", waitTimeout, got)
		}
	}
	if code, body := get(t, ts.url); code != http.StatusOK || body != "ok" {
		t.Errorf("a normal client meanwhile: %d %q", code, body)
	}
	// The quiet stream has been quiet for longer than the write deadline
	// (the others were cut by it): it is still served.
	close(quiet)
	if line, err := br.ReadString('\n'); line != "second\n" {
		t.Errorf("the quiet stream after the write deadline: %q, %v", line, err)
	}
	if n := testutil.ToFloat64(ts.metrics.cut.WithLabelValues("test", "write")); n < 2 {
		t.Errorf("write deadline cuts = %v, want 2", n)
	}
}

// readFromRecorder keeps the error of the ResponseWriter's ReadFrom,
// which http.ServeFile uses (sendfile) and whose error it drops.
type readFromRecorder struct {
	http.ResponseWriter
	err error
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := r.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	if err != nil {
		r.err = err
	}
	return n, err
}

// A body over its route's limit is 413: before the handler when the
// request says its length, from the handler's read otherwise.
func TestTooLarge(t *testing.T) {
	handled := make(chan struct{}, 10)
	h := requireToken()
	ts := start(t, Limits{}, func(*http.Request) Shape { return Shape{MaxBody: 1000} },
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled <- struct{}{}; h.ServeHTTP(w, r) }))

	body := strings.Repeat(" ", 2000)
	code, msg := get(t, ts.url+"/x?", "Authorization", "Bearer ok") // a small body passes
	if code != http.StatusOK {
		t.Fatalf("small body: %d %s", code, msg)
	}
	<-handled
	req, _ := http.NewRequest("POST", ts.url+"/v1/x", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer ok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), `"too_large"`) || len(handled) != 0 {
		t.Errorf("announced %d bytes: %d %s (handled: %d), want 413 before the handler", len(body), resp.StatusCode, b, len(handled))
	}
	// Chunked: no length announced.
	req, _ = http.NewRequest("POST", ts.url+"/v1/x", io.MultiReader(strings.NewReader(body)))
	req.Header.Set("Authorization", "Bearer ok")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "limit of 1000 bytes") {
		t.Errorf("chunked %d bytes: %d %s, want 413", len(body), resp.StatusCode, b)
	}
}

// Connections past the caps, total and per source, are closed as soon as
// they are accepted, and counted; the others are served, and a slot
// freed is taken again.
func TestConnectionCaps(t *testing.T) {
	ts := start(t, Limits{MaxConns: 3, MaxConnsPerSource: 2}, nil,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	open := func(src string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", ts.addr)
		if err != nil {
			return nil, err // the reset of a refusal can come this early
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(waitTimeout))
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return c, err
		}
		resp.Body.Close()
		return c, nil
	}
	a1, err := open("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open("127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := open("127.0.0.1"); err == nil {
		t.Error("a third connection from one source was served; the cap per source is 2")
	}
	if _, err := open("127.0.0.2"); err != nil {
		t.Fatalf("another source: %v", err)
	}
	if _, err := open("127.0.0.3"); err == nil {
		t.Error("a fourth connection was served; the total cap is 3")
	}
	for reason, want := range map[string]float64{"source": 1, "total": 1} {
		if n := testutil.ToFloat64(ts.metrics.refused.WithLabelValues("test", reason)); n != want {
			t.Errorf("refused by the %s cap: %v, want %v", reason, n, want)
		}
	}
	a1.Close()
	testwait.For(t, "the closed connection's slot to be given back", waitTimeout, func() bool {
		return testutil.ToFloat64(ts.metrics.open.WithLabelValues("test")) == 2
	})
	if _, err := open("127.0.0.3"); err != nil {
		t.Errorf("after a connection closed: %v", err)
	}
}

func TestMethodLabel(t *testing.T) {
	for in, want := range map[string]string{"GET": "GET", "DELETE": "DELETE", "get": "other", "FOO": "other", strings.Repeat("X", 100): "other"} {
		if got := MethodLabel(in); got != want {
			t.Errorf("MethodLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
