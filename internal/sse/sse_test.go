package sse

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// recorder is a streaming http.ResponseWriter: it keeps what was flushed
// apart from what was only written, and fails writes once gone is set.
type recorder struct {
	mu      sync.Mutex
	header  http.Header
	code    int
	pending strings.Builder
	flushed strings.Builder
	gone    bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.code = code
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return 0, errors.New("client gone")
	}
	return r.pending.Write(p)
}

func (r *recorder) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushed.WriteString(r.pending.String())
	r.pending.Reset()
}

// take returns what was flushed since the last take.
func (r *recorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.flushed.String()
	r.flushed.Reset()
	return s
}

func (r *recorder) leave() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = true
}

func TestEvent(t *testing.T) {
	tests := map[string]struct {
		id, name string
		data     string
		want     string
	}{
		"json":         {id: "7", name: "event", data: `{"seq":7}`, want: "id: 7\nevent: event\ndata: {\"seq\":7}\n\n"},
		"no id":        {name: "tick", data: "x", want: "event: tick\ndata: x\n\n"},
		"no name":      {id: "1", data: "x", want: "id: 1\ndata: x\n\n"},
		"empty data":   {id: "2", want: "id: 2\ndata: \n\n"},
		"lines":        {data: "a\nb", want: "data: a\ndata: b\n\n"},
		"crlf":         {data: "a\r\nb", want: "data: a\ndata: b\n\n"},
		"trailing eol": {data: "a\n", want: "data: a\ndata: \n\n"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			w, err := Start(rec)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Event(tc.id, tc.name, []byte(tc.data)); err != nil {
				t.Fatal(err)
			}
			if got := rec.take(); got != "" {
				t.Errorf("flushed before Flush: %q", got)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, rec.take()); diff != "" {
				t.Errorf("written (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStart(t *testing.T) {
	rec := newRecorder()
	w, err := Start(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{"Content-Type": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if diff := cmp.Diff(want, rec.header); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	if rec.code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.code)
	}
	if err := w.Comment("hello"); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got := rec.take(); got != ": hello\n\n" {
		t.Errorf("comment %q", got)
	}

	// A client that left: the write fails, and so does every call after.
	rec.leave()
	if err := w.Event("1", "event", []byte("x")); err == nil {
		t.Error("Event after the client left: no error")
	}
	if err := w.Flush(); err == nil {
		t.Error("Flush after a failed write: no error")
	}
}

// plainWriter cannot flush.
type plainWriter struct{ http.ResponseWriter }

// wrapper wraps a writer as middleware does.
type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestStartNeedsFlush(t *testing.T) {
	tests := map[string]struct {
		w    func(*recorder) http.ResponseWriter
		want error
	}{
		"flusher":          {w: func(r *recorder) http.ResponseWriter { return r }},
		"wrapped flusher":  {w: func(r *recorder) http.ResponseWriter { return wrapper{r} }},
		"no flush":         {w: func(r *recorder) http.ResponseWriter { return plainWriter{r} }, want: ErrNoFlush},
		"wrapped no flush": {w: func(r *recorder) http.ResponseWriter { return wrapper{plainWriter{r}} }, want: ErrNoFlush},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := newRecorder()
			_, err := Start(tc.w(rec))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start: %v, want %v", err, tc.want)
			}
			if err != nil && (rec.code != 0 || len(rec.header) != 0) {
				t.Errorf("Start wrote %d %v before failing", rec.code, rec.header)
			}
		})
	}
}

func TestResume(t *testing.T) {
	tests := map[string]struct {
		header string
		since  uint64
		want   uint64
	}{
		"no header":      {since: 4, want: 4},
		"header":         {header: "9", since: 4, want: 9},
		"header is zero": {header: "0", since: 4, want: 0},
		"not a number":   {header: "abc", since: 4, want: 4},
		"negative":       {header: "-1", since: 4, want: 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/events/stream", nil)
			if tc.header != "" {
				r.Header.Set("Last-Event-ID", tc.header)
			}
			if got := Resume(r, tc.since); got != tc.want {
				t.Errorf("Resume = %d, want %d", got, tc.want)
			}
		})
	}
}

// entry is a log entry as the tests' log holds it.
type entry struct {
	Seq uint64 `json:"seq"`
}

// testLog is a log that Tail follows.
type testLog struct {
	mu      sync.Mutex
	entries []entry
	changed chan struct{}
	reads   int
	fail    error
}

func newLog(n int) *testLog {
	l := &testLog{changed: make(chan struct{})}
	l.add(n)
	return l
}

// add appends n entries.
func (l *testLog) add(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for range n {
		l.entries = append(l.entries, entry{Seq: uint64(len(l.entries) + 1)})
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *testLog) tail(page int) Tail[entry] {
	return Tail[entry]{
		Name: "event",
		Page: page,
		Seq:  func(e entry) uint64 { return e.Seq },
		Read: func(since uint64) (<-chan struct{}, []entry, error) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.reads++
			if l.fail != nil {
				return nil, nil, l.fail
			}
			var out []entry
			for _, e := range l.entries {
				if e.Seq > since && (page == 0 || len(out) < page) {
					out = append(out, e)
				}
			}
			return l.changed, out, nil
		},
	}
}

// ids returns the event ids in a stream's text, and whether it holds a
// keep-alive comment.
func ids(stream string) (got []string, keptAlive bool) {
	for line := range strings.Lines(stream) {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			got = append(got, strings.TrimSpace(id))
		}
		keptAlive = keptAlive || line == ": heartbeat\n"
	}
	return got, keptAlive
}

func TestFollow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newLog(5)
		rec := newRecorder()
		w, _ := Start(rec)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- log.tail(2).Follow(ctx, w, 1) }()

		// The entries after since, in pages of two, then nothing until
		// something happens.
		synctest.Wait()
		got, _ := ids(rec.take())
		if diff := cmp.Diff([]string{"2", "3", "4", "5"}, got); diff != "" {
			t.Errorf("backlog ids (-want +got):\n%s", diff)
		}
		log.mu.Lock()
		if log.reads != 3 {
			t.Errorf("%d reads for a backlog of 4 in pages of 2, want 3", log.reads)
		}
		log.mu.Unlock()

		// A new entry is sent as soon as the log changes.
		log.add(1)
		synctest.Wait()
		if got, _ := ids(rec.take()); !cmp.Equal(got, []string{"6"}) {
			t.Errorf("after one more: ids %v, want [6]", got)
		}

		// An idle stream is kept alive.
		time.Sleep(DefaultKeepAlive)
		synctest.Wait()
		if got, keptAlive := ids(rec.take()); len(got) > 0 || !keptAlive {
			t.Errorf("idle for %v: ids %v, kept alive %v; want only a keep-alive", DefaultKeepAlive, got, keptAlive)
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow after ctx ended: %v, want nil", err)
		}
	})
}

func TestFollowEnds(t *testing.T) {
	errRead := errors.New("read failed")
	tests := map[string]struct {
		setup func(*testLog, *recorder)
		want  error
	}{
		"read fails":  {setup: func(l *testLog, _ *recorder) { l.fail = errRead }, want: errRead},
		"client gone": {setup: func(_ *testLog, r *recorder) { r.leave() }},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := newLog(0)
				rec := newRecorder()
				w, _ := Start(rec)
				done := make(chan error, 1)
				go func() { done <- log.tail(10).Follow(t.Context(), w, 0) }()
				synctest.Wait()
				log.mu.Lock()
				tc.setup(log, rec)
				log.mu.Unlock()
				// The next round meets the failure.
				log.add(1)
				if err := <-done; !errors.Is(err, tc.want) {
					t.Errorf("Follow = %v, want %v", err, tc.want)
				}
			})
		})
	}
}

// TestOverHTTP streams over a real connection: a client that resumes
// with Last-Event-ID gets what follows it, each event as it comes.
func TestOverHTTP(t *testing.T) {
	log := newLog(3)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w, err := Start(rw)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		log.tail(100).Follow(r.Context(), w, Resume(r, 0))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for len(got) < 3 && sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			got = append(got, id)
			if id == "3" {
				log.add(1) // the stream is open: this one comes live
			}
		}
	}
	if diff := cmp.Diff([]string{"2", "3", "4"}, got); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
}
