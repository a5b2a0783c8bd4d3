package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Source is where an artifact can be fetched from.
type Source struct {
	// Name says which source this is, in logs, events and metrics:
	// "central", "upstream", "peer n2".
	Name string
	// URL is the artifact's own URL (GET answers its bytes).
	URL string
	// Client makes the request; nil means http.DefaultClient.
	Client *http.Client
	// Header is sent with the request: a credential, for instance. It is
	// never logged.
	Header http.Header
	// WAN marks a source past the site (central, an upstream URL): its
	// transfers are capped by the replicator's Limit and counted apart.
	WAN bool
}

// FetchOptions tune one fetch.
type FetchOptions struct {
	// Limit caps the transfer's bandwidth; nil (or an infinite limit)
	// means no cap. The body is read in pieces of at most its burst.
	Limit *rate.Limiter
	// Progress is called as bytes arrive (at most about once per MiB)
	// with the bytes held so far and the artifact's size.
	Progress func(held, size int64)
	// Stall ends a transfer that received nothing for this long; 0 means
	// DefaultStall. The bytes received are kept, to resume from.
	Stall time.Duration
}

// DefaultStall is how long a fetch waits for a byte before it gives up
// (and is resumed by the next try).
const DefaultStall = 30 * time.Second

var errStalled = errors.New("artifact: the transfer stalled")

// ErrFetching refuses a fetch of a digest another fetch is writing.
var ErrFetching = errors.New("artifact: already being fetched")

// Fetch makes the store hold d, of size bytes (negative: unknown), from
// src. It resumes a partial transfer left by an earlier fetch (from any
// source: the bytes of a digest are the same everywhere) with a Range
// request, and hashes everything before it publishes: bytes that do not
// hash to d are thrown away, the partial file with them, and a
// *CorruptError returned; so are the bytes of a source that sends more
// than size (ErrTooLarge). A transfer that breaks, stalls or ends short
// keeps what arrived for the next fetch. It returns the bytes transferred
// by this call.
func (s *Store) Fetch(ctx context.Context, src Source, d Digest, size int64, opt FetchOptions) (int64, error) {
	if !d.valid() {
		return 0, fmt.Errorf("%w: %q", ErrBadDigest, clip(string(d)))
	}
	if _, ok := s.Stat(d); ok {
		return 0, nil
	}
	if err := s.claim(d); err != nil {
		return 0, err
	}
	defer s.release(d)

	f, h, held, err := s.openPartial(d, size)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	held, got, err := s.transfer(ctx, src, d, size, held, f, h, opt)
	total := held + got
	switch {
	case errors.Is(err, ErrTooLarge):
		os.Remove(s.partial(d)) // not the artifact: none of it is worth resuming
		return got, fmt.Errorf("artifact %s from %s: more than its %d bytes: %w", d.Short(), src.Name, size, err)
	case err == nil && size >= 0 && total < size:
		err = fmt.Errorf("artifact %s from %s: the transfer ended after %d of %d bytes", d.Short(), src.Name, total, size)
	}
	if err != nil {
		if total == 0 {
			os.Remove(s.partial(d)) // nothing to resume
		}
		return got, err
	}
	if err := f.Sync(); err != nil {
		return got, fmt.Errorf("artifact %s: %w", d.Short(), err)
	}
	if sum := Digest(hex.EncodeToString(h.Sum(nil))); sum != d {
		os.Remove(s.partial(d))
		return got, &CorruptError{Want: d, Got: sum, Size: total, Source: src.Name}
	}
	return got, s.publish(s.partial(d), d)
}

// claim marks d as being fetched, or refuses with ErrFetching if it is.
func (s *Store) claim(d Digest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fetching[d] {
		return fmt.Errorf("%w: %s", ErrFetching, d.Short())
	}
	s.fetching[d] = true
	return nil
}

func (s *Store) release(d Digest) {
	s.mu.Lock()
	delete(s.fetching, d)
	s.mu.Unlock()
}

// openPartial opens d's partial file and hashes what an earlier fetch
// left in it; more than size bytes are dropped.
func (s *Store) openPartial(d Digest, size int64) (*os.File, hash.Hash, int64, error) {
	f, err := os.OpenFile(s.partial(d), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("artifact %s: %w", d.Short(), err)
	}
	h := sha256.New()
	held, err := io.Copy(h, f)
	if err == nil && size >= 0 && held > size {
		held, err = 0, restart(f, h)
	}
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("artifact %s: read partial: %w", d.Short(), err)
	}
	return f, h, held, nil
}

// restart empties f and h.
func restart(f *os.File, h hash.Hash) error {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// transfer asks src for d from byte held on and appends what comes to f
// and h. A source that ignores the Range starts over: f and h are reset.
// It returns the bytes held before the body (held, or 0 after a restart)
// and the bytes of the body.
func (s *Store) transfer(ctx context.Context, src Source, d Digest, size, held int64, f *os.File, h hash.Hash, opt FetchOptions) (int64, int64, error) {
	if size >= 0 && held == size {
		return held, 0, nil // whole already: a crash came between the last byte and the rename
	}
	stall := opt.Stall
	if stall <= 0 {
		stall = DefaultStall
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &watchdog{stall: stall}
	w.t = time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w: nothing for %s", errStalled, stall)) })
	defer w.t.Stop()

	resp, err := get(ctx, src, held)
	if err != nil {
		return held, 0, causeOf(ctx, err)
	}
	defer resp.Body.Close()
	held, err = s.resumeAt(resp, src, d, size, held, f, h)
	if err != nil || resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		return held, 0, err
	}
	got, err := s.copyBody(ctx, resp.Body, f, h, held, size, w, opt)
	return held, got, err
}

// resumeAt checks src's answer to a request from byte held and places f
// where its body goes: at held for a 206 that starts there, at 0 for a
// 200 (the source ignored the Range). A 416 to a resumed request of an
// artifact of unknown size says held is all there is: the hash decides.
func (s *Store) resumeAt(resp *http.Response, src Source, d Digest, size, held int64, f *os.File, h hash.Hash) (int64, error) {
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := contentRange(resp.Header.Get("Content-Range"))
		if !ok || start != held {
			return held, fmt.Errorf("artifact %s from %s: answered a range other than bytes=%d- (%q)", d.Short(), src.Name, held, resp.Header.Get("Content-Range"))
		}
		if size >= 0 && total >= 0 && total != size {
			return held, fmt.Errorf("artifact %s from %s: it has %d bytes, not %d", d.Short(), src.Name, total, size)
		}
	case http.StatusOK:
		if size >= 0 && resp.ContentLength > size {
			return held, ErrTooLarge
		}
		if held > 0 {
			if err := restart(f, h); err != nil {
				return held, fmt.Errorf("artifact %s: %w", d.Short(), err)
			}
			held = 0
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if held > 0 && size < 0 {
			return held, nil
		}
		fallthrough
	default:
		return held, fmt.Errorf("artifact %s from %s: %s", d.Short(), src.Name, resp.Status)
	}
	if _, err := f.Seek(held, io.SeekStart); err != nil {
		return held, fmt.Errorf("artifact %s: %w", d.Short(), err)
	}
	return held, nil
}

// watchdog ends a transfer that receives nothing for stall.
type watchdog struct {
	t     *time.Timer
	stall time.Duration
}

func (w *watchdog) pet()   { w.t.Reset(w.stall) }
func (w *watchdog) pause() { w.t.Stop() }

// copyBody appends body to f and h under the limiter, reporting progress.
// The watchdog rests while the limiter holds the transfer back.
func (s *Store) copyBody(ctx context.Context, body io.Reader, f *os.File, h hash.Hash, held, size int64, w *watchdog, opt FetchOptions) (int64, error) {
	buf := make([]byte, 256<<10)
	limit := opt.Limit
	if limit != nil && limit.Limit() == rate.Inf {
		limit = nil
	}
	if limit != nil && limit.Burst() < len(buf) {
		buf = buf[:max(limit.Burst(), 1)]
	}
	var got, reported int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			w.pet()
			if size >= 0 && held+got+int64(n) > size {
				return got, ErrTooLarge
			}
			if _, err := f.Write(buf[:n]); err != nil {
				return got, fmt.Errorf("artifact: write: %w", err)
			}
			h.Write(buf[:n])
			got += int64(n)
			if opt.Progress != nil && got-reported >= 1<<20 {
				opt.Progress(held+got, size)
				reported = got
			}
			if limit != nil {
				w.pause()
				if err := limit.WaitN(ctx, n); err != nil {
					return got, causeOf(ctx, err)
				}
				w.pet()
			}
		}
		if rerr == io.EOF {
			if opt.Progress != nil {
				opt.Progress(held+got, size)
			}
			return got, nil
		}
		if rerr != nil {
			return got, causeOf(ctx, rerr)
		}
	}
}

func get(ctx context.Context, src Source, from int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("artifact: source %s: %w", src.Name, redact(err))
	}
	for k, v := range src.Header {
		req.Header[k] = v
	}
	// The bytes as they are: a transport that decompressed them would
	// count its offsets in other bytes than the Range's.
	req.Header.Set("Accept-Encoding", "identity")
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
	}
	c := src.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("artifact: source %s: %w", src.Name, redact(err))
	}
	return resp, nil
}

// redact keeps the query and the user information of the URL in a
// *url.Error (which may hold a credential: a signed URL's token) out of
// its message.
func redact(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	c := *ue
	c.URL = redactURL(ue.URL)
	if c.URL == ue.URL {
		return err
	}
	return &c
}

// redactURL is raw without its query, fragment and user information.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: cut what may be a query, and any user information.
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i] + "?..."
		}
		if i := strings.LastIndexByte(raw, '@'); i >= 0 {
			raw = "..." + raw[i:]
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("...")
	}
	if u.RawQuery != "" || u.ForceQuery {
		u.RawQuery, u.ForceQuery = "...", false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// contentRange reads "bytes <first>-<last>/<size>"; size is -1 for "*".
func contentRange(cr string) (first, size int64, ok bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	a, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false
	}
	if total == "*" {
		return first, -1, true
	}
	size, err = strconv.ParseInt(total, 10, 64)
	return first, size, err == nil && size > first
}

func causeOf(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errStalled) {
		return c
	}
	return err
}
