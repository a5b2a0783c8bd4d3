package agent

import (
	"bufio"
	"bytes"
	"compress/gzip"
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
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/outposthq/outpost/internal/backoff"
)

// Compression formats of an image.
const (
	formatRaw  = "raw"
	formatGzip = "gzip"
	formatZstd = "zstd"
	formatXz   = "xz"
)

// Magic numbers of the compressed formats.
var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// errStalled: no byte of the download came for StallTimeout.
var errStalled = errors.New("download stalled")

// permanentError is a download failure that trying again within the
// attempt would not fix: a missing image, a checksum mismatch, a disk
// that refuses writes.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// imageWrite streams an image to a disk, decompressing it on the fly and
// verifying its sha256. A download that breaks is started again from the
// beginning, for as long as the attempt lasts.
func imageWrite(ctx context.Context, s *step) (string, error) {
	dev, raw, want := s.arg("device"), s.arg("url"), strings.ToLower(s.arg("sha256"))
	if raw == "" {
		return "", errors.New("no url: the appliance resolves the image to url, sha256 and format when it creates the workflow")
	}
	u, err := s.r.c.base.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("url %q is not an http(s) URL", raw)
	}
	if b, err := hex.DecodeString(want); want != "" && (err != nil || len(b) != sha256.Size) {
		return "", fmt.Errorf("sha256 %q is not a hex SHA-256", want)
	}
	if want == "" {
		s.log.Warn("the image has no sha256: it is written unverified", "url", u.Redacted())
	}
	for try := 1; ; try++ {
		msg, err := s.writeImage(ctx, u, dev, want)
		if err == nil {
			return msg, nil
		}
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			return "", err
		}
		wait := s.cfg().retry().Wait(try)
		s.log.Warn("download broke; starting it again", "url", u.Redacted(), "err", err, "try", try, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return "", fmt.Errorf("%w (gave up after %d tries)", err, try)
		}
	}
}

// writeImage downloads the image once and writes it to dev.
func (s *step) writeImage(ctx context.Context, u *url.URL, dev, want string) (string, error) {
	stall := s.cfg().StallTimeout
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w: no data for %s", errStalled, stall)) })
	defer watchdog.Stop()

	resp, err := s.get(ctx, u)
	if err != nil {
		return "", cause(ctx, err)
	}
	defer resp.Body.Close()
	body := &meter{r: resp.Body, h: sha256.New(), onData: func() { watchdog.Reset(stall) }}
	br := bufio.NewReaderSize(body, 256<<10)
	format, err := detectFormat(s.arg("format"), br)
	if err != nil && body.err != nil {
		return "", cause(ctx, body.err)
	}
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return "", permanent(err)
	}
	defer f.Close()
	start, total := time.Now(), resp.ContentLength
	written, err := s.decompressTo(f, br, format, func(written int64) {
		s.Progress(percent(body.n, total), imageProgress(format, body.n, total, written, time.Since(start)))
	})
	var werr *writeError
	if errors.As(err, &werr) {
		return "", permanent(err)
	}
	io.Copy(io.Discard, br) // the rest of the file, for its checksum
	if body.err != nil {
		return "", cause(ctx, body.err) // a broken download: try again
	}
	if got := body.sum(); want != "" && got != want {
		return "", permanent(fmt.Errorf("sha256 mismatch: downloaded %s, expected %s", got, want))
	}
	if err != nil {
		return "", permanent(err) // the image itself is corrupt
	}
	if err := finishDisk(s, f, written); err != nil {
		return "", permanent(err)
	}
	took := time.Since(start)
	verified := "sha256 verified"
	if want == "" {
		verified = "not verified: no sha256"
	}
	return fmt.Sprintf("wrote %s to %s (%s downloaded, %s, %s) in %s (%.1f MiB/s)", sizeStr(written), dev,
		sizeStr(body.n), format, verified, took.Round(100*time.Millisecond), rate(body.n, took)), nil
}

// get sends the image's GET. Failures a retry may fix (network errors,
// 5xx, 408, 429) are returned as they are, the others as permanent.
func (s *step) get(ctx context.Context, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, permanent(err)
	}
	req.Header.Set("User-Agent", userAgent)
	if base := s.r.c.base; u.Scheme == base.Scheme && u.Host == base.Host {
		req.Header.Set("Authorization", "Bearer "+s.r.c.token) // never to another host
	}
	resp, err := s.cfg().HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	resp.Body.Close()
	err = fmt.Errorf("download %s: %s", u.Redacted(), resp.Status)
	switch c := resp.StatusCode; {
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return nil, err
	}
	return nil, permanent(err)
}

// cause returns the stall as the error if the watchdog ended ctx.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, errStalled) {
		return c
	}
	return err
}

// detectFormat names the compression of an image: from the format
// argument (raw, raw.gz, raw.zst, raw.xz and the like), else from its
// first bytes.
func detectFormat(arg string, br *bufio.Reader) (string, error) {
	switch a := strings.TrimPrefix(strings.ToLower(arg), "raw."); a {
	case "raw", "img":
		return formatRaw, nil
	case "gz", "gzip":
		return formatGzip, nil
	case "zst", "zstd":
		return formatZstd, nil
	case "xz":
		return formatXz, nil
	}
	head, err := br.Peek(len(magicXz))
	if err != nil && !errors.Is(err, io.EOF) {
		return formatRaw, err
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		return formatGzip, nil
	case bytes.HasPrefix(head, magicZstd):
		return formatZstd, nil
	case bytes.HasPrefix(head, magicXz):
		return formatXz, nil
	}
	return formatRaw, nil
}

// writeError is a failure to write the disk.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write disk: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// decompressTo writes the image in r, decompressed, to f in chunks, and
// calls progress after each.
func (s *step) decompressTo(f *os.File, r io.Reader, format string, progress func(int64)) (int64, error) {
	var src io.Reader
	switch format {
	case formatGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		src = zr
	case formatZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			return 0, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		src = zr
	case formatXz:
		zr, err := xz.NewReader(r)
		if err != nil {
			return 0, fmt.Errorf("xz: %w", err)
		}
		src = zr
	default:
		src = r
	}
	buf := make([]byte, chunk)
	var written int64
	for {
		n, err := fill(src, buf)
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				return written, &writeError{werr}
			}
			written += int64(n)
			progress(written)
		}
		switch {
		case err == io.EOF:
			return written, nil
		case err != nil:
			return written, fmt.Errorf("%s: %w", format, err)
		}
	}
}

// fill reads from r until buf is full or r fails (io.EOF at its end).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// finishDisk makes the written image durable: a regular file (in tests)
// is cut to its size; the disk is synced and its partitions re-read.
func finishDisk(s *step, f *os.File, written int64) error {
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := f.Truncate(written); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	rereadPartitions(s, f)
	return nil
}

// imageProgress describes a download in progress.
func imageProgress(format string, downloaded, total, written int64, took time.Duration) string {
	r := rate(downloaded, took)
	switch {
	case total <= 0:
		return fmt.Sprintf("wrote %s (%.1f MiB/s)", sizeStr(written), r)
	case format == formatRaw:
		return fmt.Sprintf("wrote %s of %s (%.1f MiB/s)", sizeStr(written), sizeStr(total), r)
	}
	return fmt.Sprintf("downloaded %s of %s, wrote %s (%.1f MiB/s)", sizeStr(downloaded), sizeStr(total), sizeStr(written), r)
}

// meter counts and hashes what is read through it, and records the first
// read error: a broken download, not bad data.
type meter struct {
	r      io.Reader
	h      hash.Hash
	n      int64
	err    error
	onData func()
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.h.Write(p[:n])
		m.n += int64(n)
		m.onData()
	}
	if err != nil && err != io.EOF && m.err == nil {
		m.err = err
	}
	return n, err
}

func (m *meter) sum() string { return hex.EncodeToString(m.h.Sum(nil)) }
