package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	// Limit caps the transfer's bandwidth; nil means no cap.
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

// Fetch makes the store hold d, of size bytes (negative: unknown), from
// src. It resumes a partial transfer left by an earlier fetch (from any
// source: the bytes of a digest are the same everywhere) with a Range
// request, and hashes everything before it publishes: bytes that do not
// hash to d are thrown away, the partial file with them, and a
// *CorruptError returned. A transfer that breaks keeps what arrived for
// the next fetch. It returns the bytes transferred by this call.
func (s *Store) Fetch(ctx context.Context, src Source, d Digest, size int64, opt FetchOptions) (int64, error) {
	if !d.valid() {
		return 0, fmt.Errorf("%w: %q", ErrBadDigest, clip(string(d)))
	}
	if _, ok := s.Stat(d); ok {
		return 0, nil
	}
	s.mu.Lock()
	if s.fetching[d] {
		s.mu.Unlock()
		return 0, fmt.Errorf("artifact %s: already being fetched", d.Short())
	}
	s.fetching[d] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.fetching, d)
		s.mu.Unlock()
	}()

	f, err := os.OpenFile(s.partial(d), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return 0, fmt.Errorf("artifact %s: %w", d.Short(), err)
	}
	defer f.Close()
	h := sha256.New()
	held, err := io.Copy(h, f) // what an earlier fetch left
	if err != nil {
		return 0, fmt.Errorf("artifact %s: read partial: %w", d.Short(), err)
	}
	if size >= 0 && held > size {
		held = 0
		h.Reset()
		if err := f.Truncate(0); err != nil {
			return 0, err
		}
		f.Seek(0, io.SeekStart)
	}
	got, err := s.transfer(ctx, src, d, size, held, f, h, opt)
	if err != nil {
		return got, err
	}
	total := held + got
	if err := f.Sync(); err != nil {
		return got, fmt.Errorf("artifact %s: %w", d.Short(), err)
	}
	sum := Digest(hex.EncodeToString(h.Sum(nil)))
	if sum != d || (size >= 0 && total != size) {
		os.Remove(s.partial(d))
		return got, &CorruptError{Want: d, Got: sum, Size: total, Source: src.Name}
	}
	return got, s.publish(s.partial(d), d)
}

// transfer asks src for d from byte held on and appends what comes to f
// and h. A source that ignores the Range starts over: f and h are reset.
func (s *Store) transfer(ctx context.Context, src Source, d Digest, size, held int64, f *os.File, h io.Writer, opt FetchOptions) (int64, error) {
	if size >= 0 && held == size {
		return 0, nil // whole already: a crash came between the last byte and the rename
	}
	stall := opt.Stall
	if stall <= 0 {
		stall = DefaultStall
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w: nothing for %s", errStalled, stall)) })
	defer watchdog.Stop()

	resp, err := get(ctx, src, held)
	if err != nil {
		return 0, causeOf(ctx, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, ok := rangeStart(resp.Header.Get("Content-Range")); !ok || start != held {
			return 0, fmt.Errorf("artifact %s from %s: answered a range other than bytes=%d-", d.Short(), src.Name, held)
		}
	case http.StatusOK:
		if held > 0 { // the source ignored the Range: start over
			if err := f.Truncate(0); err != nil {
				return 0, err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return 0, err
			}
			if r, ok := h.(interface{ Reset() }); ok {
				r.Reset()
			}
			held = 0
		}
	default:
		return 0, fmt.Errorf("artifact %s from %s: %s", d.Short(), src.Name, resp.Status)
	}
	if _, err := f.Seek(held, io.SeekStart); err != nil {
		return 0, err
	}
	return s.copyBody(ctx, resp.Body, f, h, held, size, watchdog, stall, opt)
}

// copyBody appends body to f and h under the limiter, reporting progress.
func (s *Store) copyBody(ctx context.Context, body io.Reader, f *os.File, h io.Writer, held, size int64, watchdog *time.Timer, stall time.Duration, opt FetchOptions) (int64, error) {
	buf := make([]byte, 256<<10)
	var got, reported int64
	for {
		chunk := buf
		if opt.Limit != nil && opt.Limit.Burst() < len(chunk) {
			chunk = buf[:max(opt.Limit.Burst(), 1)]
		}
		n, rerr := body.Read(chunk)
		if n > 0 {
			watchdog.Reset(stall)
			if size >= 0 && held+got+int64(n) > size {
				return got, ErrTooLarge
			}
			if _, err := f.Write(chunk[:n]); err != nil {
				return got, fmt.Errorf("artifact: write: %w", err)
			}
			h.Write(chunk[:n])
			got += int64(n)
			if opt.Progress != nil && got-reported >= 1<<20 {
				opt.Progress(held+got, size)
				reported = got
			}
			if opt.Limit != nil {
				if err := opt.Limit.WaitN(ctx, n); err != nil {
					return got, causeOf(ctx, err)
				}
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
		return nil, fmt.Errorf("artifact: source %s: %w", src.Name, err)
	}
	for k, v := range src.Header {
		req.Header[k] = v
	}
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
	}
	c := src.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("artifact: source %s: %w", src.Name, redact(err, src.URL))
	}
	return resp, nil
}

// redact keeps a URL's query (which may hold a credential) out of an
// error.
func redact(err error, raw string) error {
	var ue interface{ Unwrap() error }
	if i := strings.IndexByte(raw, '?'); i >= 0 && errors.As(err, &ue) {
		return errors.New(strings.ReplaceAll(err.Error(), raw, raw[:i]+"?..."))
	}
	return err
}

// rangeStart reads the first byte of "bytes <first>-<last>/<size>".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil && n >= 0
}

func causeOf(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errStalled) {
		return c
	}
	return err
}
