package artifact

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/internal/testwait"
)

// A fetch publishes the artifact only whole and verified, read-only,
// leaving no partial behind.
func TestFetchWhole(t *testing.T) {
	data, d := blob(300 << 10)
	o := newOrigin(t, data)
	s := openStore(t)
	var progress []int64
	got, err := fetch(t, s, o.source("central"), d, int64(len(data)), FetchOptions{
		Progress: func(held, size int64) { progress = append(progress, held) },
	})
	if err != nil || got != int64(len(data)) {
		t.Fatalf("Fetch = %d, %v; want %d, nil", got, err, len(data))
	}
	if b := contents(t, s, d); string(b) != string(data) {
		t.Fatal("the store holds other bytes than the artifact's")
	}
	fi, err := os.Stat(s.path(d))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Errorf("published file: %v, %v; want mode 0444", fi.Mode(), err)
	}
	if p := s.Partial(d); p != 0 {
		t.Errorf("a partial of %d bytes remains", p)
	}
	if diff := cmp.Diff([]string{""}, o.requests()); diff != "" {
		t.Errorf("requests' Range (-want +got):\n%s", diff)
	}
	if len(progress) == 0 || progress[len(progress)-1] != int64(len(data)) {
		t.Errorf("progress %v does not end at %d", progress, len(data))
	}
	// Held: no second transfer.
	if got, err := fetch(t, s, o.source("central"), d, int64(len(data)), FetchOptions{}); got != 0 || err != nil || len(o.requests()) != 1 {
		t.Errorf("second Fetch = %d, %v after %d requests; want 0, nil and no request", got, err, len(o.requests()))
	}
}

// A transfer cut in the middle keeps what arrived; the next fetch asks
// for the rest only (from the same source or another), or starts over
// cleanly if the source ignores the Range, and refuses a source that
// answers another range than it asked.
func TestFetchResume(t *testing.T) {
	const size, half = 200 << 10, 70 << 10
	data, d := blob(size)
	tests := map[string]struct {
		second    fault
		secondErr string // "" if the second fetch succeeds
		wantSent  int64  // the bytes the origin sent in all
	}{
		"resumed from the break": {wantSent: size},
		"range ignored: starts over": {second: fault{ignoreRange: true},
			wantSent: half + size},
		"a range starting elsewhere is refused": {second: fault{shiftRange: 10},
			secondErr: fmt.Sprintf("answered a range other than bytes=%d-", half)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOrigin(t, data, fault{cutAfter: half}, tt.second)
			s := openStore(t)
			got, err := fetch(t, s, o.source("central"), d, size, FetchOptions{})
			if err == nil || got != half {
				t.Fatalf("cut fetch = %d, %v; want %d and an error", got, err, half)
			}
			if p := s.Partial(d); p != half {
				t.Fatalf("partial holds %d bytes, want %d", p, half)
			}
			got, err = fetch(t, s, o.source("central"), d, size, FetchOptions{})
			if diff := cmp.Diff([]string{"", fmt.Sprintf("bytes=%d-", half)}, o.requests()); diff != "" {
				t.Errorf("requests' Range (-want +got):\n%s", diff)
			}
			if tt.secondErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.secondErr) {
					t.Fatalf("second fetch: %v, want %q", err, tt.secondErr)
				}
				if _, ok := s.Stat(d); ok {
					t.Fatal("published after a wrong range")
				}
				if p := s.Partial(d); p != half {
					t.Errorf("partial holds %d bytes after the refusal, want %d kept", p, half)
				}
				// A good answer completes it.
				if _, err := fetch(t, s, o.source("central"), d, size, FetchOptions{}); err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatalf("second fetch: %v", err)
			} else if o.sentBytes() != tt.wantSent || got != o.answers()[1] {
				t.Errorf("origin sent %d bytes (answers %v), Fetch counted %d; want %d sent", o.sentBytes(), o.answers(), got, tt.wantSent)
			}
			if b := contents(t, s, d); string(b) != string(data) {
				t.Fatal("the store holds other bytes than the artifact's")
			}
			if p := s.Partial(d); p != 0 {
				t.Errorf("a partial of %d bytes remains", p)
			}
		})
	}
}

// A partial left by one source is resumed from another: the bytes of a
// digest are the same everywhere.
func TestFetchResumeFromAnotherSource(t *testing.T) {
	data, d := blob(150 << 10)
	a, b := newOrigin(t, data, fault{cutAfter: 40 << 10}), newOrigin(t, data)
	s := openStore(t)
	if _, err := fetch(t, s, a.source("peer n2"), d, int64(len(data)), FetchOptions{}); err == nil {
		t.Fatal("the cut fetch succeeded")
	}
	if _, err := fetch(t, s, b.source("central"), d, int64(len(data)), FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, want := b.requests(), []string{fmt.Sprintf("bytes=%d-", 40<<10)}; !cmp.Equal(got, want) {
		t.Errorf("second source asked for %q, want %q", got, want)
	}
	if got := contents(t, s, d); string(got) != string(data) {
		t.Fatal("the store holds other bytes than the artifact's")
	}
}

// Bytes that do not hash to the digest, or too many of them, are thrown
// away whole: nothing is published, no partial is left to resume, and a
// good source then gives the artifact.
func TestFetchRefusesOtherBytes(t *testing.T) {
	data, d := blob(120 << 10)
	tests := map[string]struct {
		fault   fault
		short   int64 // the size stated is this much less than the artifact's
		partial int   // bytes of the artifact a first source left
		corrupt bool
		wantErr error
	}{
		"a flipped byte":                {fault: fault{flip: true}, corrupt: true},
		"a flipped byte after a resume": {fault: fault{flip: true}, partial: len(data) / 3, corrupt: true},
		"more bytes than stated":        {fault: fault{extra: 5}, wantErr: ErrTooLarge},
		"a longer Content-Length":       {short: 1, wantErr: ErrTooLarge},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOrigin(t, data, tt.fault)
			size := int64(len(data)) - tt.short
			s := openStore(t)
			if tt.partial > 0 {
				writePartial(t, s, d, data[:tt.partial])
			}
			_, err := fetch(t, s, o.source("peer n2"), d, size, FetchOptions{})
			t.Logf("Fetch: %v", err)
			var ce *CorruptError
			switch {
			case tt.corrupt && !errors.As(err, &ce):
				t.Fatalf("Fetch: %v, want a *CorruptError", err)
			case tt.corrupt && (ce.Want != d || ce.Got == d || ce.Source != "peer n2" || ce.Size != size):
				t.Errorf("CorruptError %+v", ce)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Fetch: %v, want %v", err, tt.wantErr)
			}
			if _, ok := s.Stat(d); ok {
				t.Fatal("published")
			}
			if _, err := os.Stat(s.partial(d)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the partial file remains: %v", err)
			}
			if l, _ := s.List(); len(l) != 0 {
				t.Errorf("the store lists %v", l)
			}
			good := newOrigin(t, data)
			if _, err := fetch(t, s, good.source("central"), d, int64(len(data)), FetchOptions{}); err != nil {
				t.Fatalf("the good source: %v", err)
			}
			if got := good.requests(); !cmp.Equal(got, []string{""}) {
				t.Errorf("the good source was asked %q: want the whole artifact", got)
			}
			if b := contents(t, s, d); string(b) != string(data) {
				t.Fatal("the store holds other bytes than the artifact's")
			}
		})
	}
}

// writePartial leaves b as d's partial fetch, as a fetch that broke (or a
// crash) would.
func writePartial(t *testing.T, s *Store, d Digest, b []byte) {
	t.Helper()
	if err := os.WriteFile(s.partial(d), b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// A partial that a crash left whole is published: without a request if
// the size is known, after a 416 to its Range if not.
func TestFetchWholePartial(t *testing.T) {
	data, d := blob(64 << 10)
	tests := map[string]struct {
		size     int64
		requests []string
	}{
		"size known":   {size: int64(len(data)), requests: nil},
		"size unknown": {size: -1, requests: []string{fmt.Sprintf("bytes=%d-", len(data))}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOrigin(t, data)
			s := openStore(t)
			writePartial(t, s, d, data)
			if got, err := fetch(t, s, o.source("central"), d, tt.size, FetchOptions{}); got != 0 || err != nil {
				t.Fatalf("Fetch = %d, %v; want 0, nil", got, err)
			}
			if diff := cmp.Diff(tt.requests, o.requests()); diff != "" {
				t.Errorf("requests' Range (-want +got):\n%s", diff)
			}
			if b := contents(t, s, d); string(b) != string(data) {
				t.Fatal("the store holds other bytes than the artifact's")
			}
		})
	}
}

// A source's failure names the source and its status, never the URL's
// query or user information (a credential).
func TestFetchErrorsRedacted(t *testing.T) {
	data, d := blob(1000)
	closed := newOrigin(t, data)
	closed.srv.Close()
	tests := map[string]struct {
		status int    // > 0: a live origin answers this; the url is its + url
		url    string // the whole url otherwise
		want   []string
	}{
		"404":            {status: 404, url: "/a?token=s3cret", want: []string{"central", "404 Not Found"}},
		"500":            {status: 500, url: "/a?token=s3cret", want: []string{"central", "500 Internal Server Error"}},
		"refused":        {url: closed.srv.URL + "/a?X-Amz-Signature=s3cret", want: []string{"central", "connection refused", "/a?..."}},
		"user info":      {url: strings.Replace(closed.srv.URL, "http://", "http://user:s3cret@", 1) + "/a", want: []string{"central", "connection refused"}},
		"unparsable url": {url: "http://h:port/a?token=s3cret", want: []string{"central", "invalid port"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			url := tt.url
			if tt.status > 0 {
				url = newOrigin(t, data, fault{status: tt.status}).srv.URL + tt.url
			}
			s := openStore(t)
			_, err := fetch(t, s, Source{Name: "central", URL: url}, d, int64(len(data)), FetchOptions{})
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the credential", err)
			}
			if _, err := os.Stat(s.partial(d)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("an empty partial file remains: %v", err)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"http://h/a":                       "http://h/a",
		"http://h/a?token=s3cret":          "http://h/a?...",
		"http://h/a?":                      "http://h/a?...",
		"https://u:s3cret@h:8443/a?x#frag": "https://...@h:8443/a?...",
		// Unparsable (a bad port): cut by hand.
		"http://h:port/a?token=s3cret":      "http://h:port/a?...",
		"http://u:s3cret@h:port/a":          "...@h:port/a",
		"http://u:s3cret@h:port/a?t=s3cret": "...@h:port/a?...",
	}
	for raw, want := range tests {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// A transfer that stalls ends after FetchOptions.Stall, keeping what
// arrived, and the next fetch resumes it.
func TestFetchStall(t *testing.T) {
	data, d := blob(100 << 10)
	tests := map[string]fault{
		"mid-body":        {stallAfter: 30 << 10},
		"before the body": {hold: make(chan struct{})}, // never closed: no headers either
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOrigin(t, data, f)
			s := openStore(t)
			_, err := fetch(t, s, o.source("central"), d, int64(len(data)), FetchOptions{Stall: 100 * time.Millisecond})
			if !errors.Is(err, errStalled) {
				t.Fatalf("Fetch: %v, want the stall", err)
			}
			if p := s.Partial(d); p != f.stallAfter {
				t.Errorf("partial holds %d bytes, want %d", p, f.stallAfter)
			}
			if _, err := fetch(t, s, o.source("central"), d, int64(len(data)), FetchOptions{Stall: time.Minute}); err != nil {
				t.Fatal(err)
			}
			if b := contents(t, s, d); string(b) != string(data) {
				t.Fatal("the store holds other bytes than the artifact's")
			}
		})
	}
}

// The limiter paces the transfer: the body is read in pieces no larger
// than its burst, each waited for, so the whole takes at least what the
// rate allows beyond the burst. An infinite limit does not cut the
// reads down.
func TestFetchRateLimit(t *testing.T) {
	const size, burst = 96 << 10, 16 << 10
	data, d := blob(size)
	tests := map[string]struct {
		limit   *rate.Limiter
		maxRead int           // the largest read must be at most this
		minRead int           // and at least this
		atLeast time.Duration // the fetch takes at least this
	}{
		"capped": {limit: rate.NewLimiter(640<<10, burst), maxRead: burst, minRead: 1,
			atLeast: (size - burst) * time.Second / (640 << 10)},
		"infinite": {limit: rate.NewLimiter(rate.Inf, 0), maxRead: 256 << 10, minRead: 4 << 10},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := newOrigin(t, data)
			reads := &readSizes{}
			src := o.source("central")
			src.Client = &http.Client{Transport: reads.wrap(o.srv.Client().Transport)}
			s := openStore(t)
			start := time.Now()
			if _, err := fetch(t, s, src, d, size, FetchOptions{Limit: tt.limit}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if m := reads.max(); m > tt.maxRead || m < tt.minRead {
				t.Errorf("the largest read was %d bytes, want %d to %d", m, tt.minRead, tt.maxRead)
			}
			if took < tt.atLeast {
				t.Errorf("took %v, less than the %v the rate allows", took, tt.atLeast)
			}
			if b := contents(t, s, d); string(b) != string(data) {
				t.Fatal("the store holds other bytes than the artifact's")
			}
		})
	}
}

// readSizes records the size of each read of response bodies.
type readSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (r *readSizes) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body = &sizedBody{ReadCloser: resp.Body, r: r}
		}
		return resp, err
	})
}

func (r *readSizes) max() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := 0
	for _, s := range r.sizes {
		m = max(m, s)
	}
	return m
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type sizedBody struct {
	io.ReadCloser
	r *readSizes
}

func (b *sizedBody) Read(p []byte) (int, error) {
	b.r.mu.Lock()
	b.r.sizes = append(b.r.sizes, len(p))
	b.r.mu.Unlock()
	return b.ReadCloser.Read(p)
}

// Two fetches of one digest at once: the second is refused, the first
// completes unharmed.
func TestFetchConcurrent(t *testing.T) {
	data, d := blob(80 << 10)
	hold := make(chan struct{})
	o := newOrigin(t, data, fault{hold: hold})
	s := openStore(t)
	done := make(chan error, 1)
	go func() {
		_, err := fetch(t, s, o.source("central"), d, int64(len(data)), FetchOptions{})
		done <- err
	}()
	testwait.For(t, "the first fetch's request", 10*time.Second, func() bool { return len(o.requests()) == 1 })
	if _, err := fetch(t, s, o.source("central"), d, int64(len(data)), FetchOptions{}); !errors.Is(err, ErrFetching) {
		t.Errorf("second Fetch: %v, want ErrFetching", err)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatalf("first Fetch: %v", err)
	}
	if n := len(o.requests()); n != 1 {
		t.Errorf("the origin was asked %d times, want once", n)
	}
	if b := contents(t, s, d); string(b) != string(data) {
		t.Fatal("the store holds other bytes than the artifact's")
	}
}

// A digest that is not one is refused before anything is asked.
func TestFetchBadDigest(t *testing.T) {
	o := newOrigin(t, nil)
	s := openStore(t)
	for _, d := range []Digest{"", "abc", Digest(strings.Repeat("A", 64)), Digest("sha256:" + strings.Repeat("a", 64)), "../../etc/passwd"} {
		if _, err := fetch(t, s, o.source("central"), d, 1, FetchOptions{}); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Fetch(%q): %v, want ErrBadDigest", d, err)
		}
	}
	if n := len(o.requests()); n != 0 {
		t.Errorf("the origin was asked %d times", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Dir(), "partial")); len(ents) != 0 {
		t.Errorf("partial files: %v", ents)
	}
}
