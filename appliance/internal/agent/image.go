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
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
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

// mismatchError is a download whose bytes do not hash to the image's
// sha256. The appliance serves an image by its digest, verified when it
// stored it, so the bytes were most likely damaged on the way (a link
// that corrupts what TCP's checksum misses): the image is downloaded
// again from the beginning, redownloadsOnMismatch times per attempt,
// then the attempt fails (a source that really holds other bytes).
type mismatchError struct{ got, want string }

func (e *mismatchError) Error() string {
	return fmt.Sprintf("sha256 mismatch: downloaded %s, expected %s", e.got, e.want)
}

// redownloadsOnMismatch is how often one attempt downloads the image
// again after a sha256 mismatch.
const redownloadsOnMismatch = 1

// imageWrite streams an image from the appliance to a disk,
// decompressing it on the fly and verifying its sha256. A download that
// breaks is resumed where it broke (see download); one that cannot be is
// started again from the beginning, for as long as the attempt lasts. An
// image anywhere but on the appliance is refused.
func imageWrite(ctx context.Context, s *step) (string, error) {
	job := &imageJob{dev: s.arg("device"), want: strings.ToLower(s.arg("sha256"))}
	raw := s.arg("url")
	if raw == "" {
		return "", errors.New("no url: the appliance resolves the image to url, sha256 and format when it creates the workflow")
	}
	u, err := s.imageURL(raw)
	if err != nil {
		return "", err
	}
	job.u = u
	if b, err := hex.DecodeString(job.want); job.want != "" && (err != nil || len(b) != sha256.Size) {
		return "", fmt.Errorf("sha256 %q is not a hex SHA-256", job.want)
	}
	if job.want == "" {
		s.log.Warn("the image has no sha256: it is written unverified", "url", redacted(u))
	}
	for {
		msg, err := s.writeImage(ctx, job)
		if err == nil {
			return msg, nil
		}
		var bad *mismatchError
		if errors.As(err, &bad) && job.mismatches < redownloadsOnMismatch && ctx.Err() == nil {
			job.mismatches++
			job.restarts++
			s.log.Warn("the download does not hash to the image's sha256 (damaged on the way?); downloading it again",
				"url", redacted(u), "err", err, "redownload", job.mismatches, "of", redownloadsOnMismatch)
			continue
		}
		var perm *permanentError
		if errors.As(err, &perm) || bad != nil || ctx.Err() != nil {
			return "", err
		}
		job.tries++
		wait := s.cfg().retry().Wait(job.tries)
		if errors.Is(err, errStartOver) {
			job.restarts++
		}
		s.log.Warn("download failed; starting it again", "url", redacted(u), "err", err, "try", job.tries, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return "", fmt.Errorf("%w (gave up after %d tries)", err, job.tries)
		}
	}
}

// imageJob is one image.write: where from, where to, and how it went.
type imageJob struct {
	u          *url.URL
	dev, want  string
	tries      int // failed tries so far (of requests and of whole downloads)
	restarts   int // downloads started over
	mismatches int // downloads whose bytes did not hash to want
}

// imageURL resolves raw against the appliance's URL, and refuses an image
// on any other host: installers fetch only from the site.
func (s *step) imageURL(raw string) (*url.URL, error) {
	base := s.r.c.app.url()
	u, err := base.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("url %q is not an http(s) URL", raw)
	}
	u = s.r.c.app.current(u) // on a node the agent left: on the one it found since

	if !sameOrigin(u, base) {
		return nil, fmt.Errorf("image url %s is not on the appliance (%s): installers fetch only from the site", redacted(u), redacted(base))
	}
	return u, nil
}

// redacted is u as logs and messages show it: without its password and
// its query (a signed URL's credential).
func redacted(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "..."
	}
	return c.Redacted()
}

// sameOrigin reports whether a and b have one scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

// port is u's port, or its scheme's.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// writeImage downloads the image once (resuming it across breaks) and
// writes it to the job's device.
func (s *step) writeImage(ctx context.Context, job *imageJob) (string, error) {
	dl, err := s.openDownload(ctx, job.u, &job.tries)
	if err != nil {
		return "", err
	}
	defer dl.Close()
	body := &meter{r: dl, h: sha256.New()}
	br := bufio.NewReaderSize(body, 256<<10)
	format, err := detectFormat(s.arg("format"), br)
	if err != nil && body.err != nil {
		return "", body.err
	}
	f, err := os.OpenFile(job.dev, os.O_WRONLY, 0)
	if err != nil {
		return "", permanent(err)
	}
	defer f.Close()
	start, total := time.Now(), dl.total
	events := &progressEvents{span: s.span, total: total}
	disk := newDiskWriter(f)
	written, err := s.decompressTo(disk, br, format, func(written int64) {
		s.Progress(percent(body.n, total), imageProgress(format, body.n, total, written, time.Since(start)))
		events.observe(body.n, written)
	})
	var werr *writeError
	if errors.As(err, &werr) {
		return "", permanent(err)
	}
	io.Copy(io.Discard, br) // the rest of the file, for its checksum
	if body.err != nil {
		return "", body.err // the download cannot go on: start over, or give up
	}
	if got := body.sum(); job.want != "" && got != job.want {
		return "", &mismatchError{got: got, want: job.want}
	}
	if err != nil {
		return "", permanent(err) // the image itself is corrupt
	}
	if err := finishDisk(s, f, written); err != nil {
		return "", permanent(err)
	}
	took := time.Since(start)
	verified := "sha256 verified"
	if job.want == "" {
		verified = "not verified: no sha256"
	}
	zeroed := ""
	if disk.zeroed > 0 {
		zeroed = ", " + sizeStr(disk.zeroed) + " of zeros by the device"
	}
	return fmt.Sprintf("wrote %s to %s (%s downloaded, %s, %s, %s%s) in %s (%.1f MiB/s)", sizeStr(written), job.dev,
		sizeStr(body.n), format, verified, resumed(dl.resumes, job.restarts), zeroed, took.Round(100*time.Millisecond), rate(body.n, took)), nil
}

// resumed says how often a download was resumed and started over.
func resumed(resumes, restarts int) string {
	msg := "resumed " + times(resumes)
	if restarts > 0 {
		msg += ", started over " + times(restarts)
	}
	return msg
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return strconv.Itoa(n) + " times"
}

// get sends a request of the image with header (a Range), and returns
// its answer if it is 200 or 206. Failures a retry may fix (network
// errors, 5xx, 408, 429) are returned as they are; a 416 to a Range
// (the image is no longer as long) with errStartOver; the others as
// permanent. The credential goes only to the appliance, and a redirect
// anywhere else is not followed.
func (s *step) get(ctx context.Context, u *url.URL, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, permanent(err)
	}
	maps.Copy(req.Header, header)
	req.Header.Set("User-Agent", userAgent)
	base := s.r.c.app.url()
	if sameOrigin(u, base) {
		req.Header.Set("Authorization", "Bearer "+s.r.c.token) // never to another host
	}
	resp, err := siteOnly(s.cfg().HTTPClient, base).Do(req)
	s.r.c.app.answered(ctx, err == nil)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL: it is said once, redacted
		}
		return nil, fmt.Errorf("download %s: %w", redacted(u), err)
	}
	switch c := resp.StatusCode; {
	case c == http.StatusOK || c == http.StatusPartialContent:
		return resp, nil
	case c == http.StatusRequestedRangeNotSatisfiable && header.Get("Range") != "":
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s to %s", errStartOver, resp.Status, header.Get("Range"))
	}
	resp.Body.Close()
	err = fmt.Errorf("download %s: %s", redacted(u), resp.Status)
	switch c := resp.StatusCode; {
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return nil, err
	}
	return nil, permanent(err)
}

// siteOnly is c following redirects only on base's host: a redirect
// anywhere else is a permanent error, and no request goes there.
func siteOnly(c *http.Client, base *url.URL) *http.Client {
	cc := *c
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !sameOrigin(req.URL, base) {
			return permanent(fmt.Errorf("redirected to %s, not on the appliance: installers fetch only from the site", redacted(req.URL)))
		}
		if c.CheckRedirect != nil {
			return c.CheckRedirect(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
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

// decompressTo writes the image in r, decompressed, to w in chunks, and
// calls progress after each.
func (s *step) decompressTo(w *diskWriter, r io.Reader, format string, progress func(int64)) (int64, error) {
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
			if werr := w.write(buf[:n]); werr != nil {
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
// read error: a download that cannot go on, not bad data.
type meter struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		m.h.Write(p[:n])
		m.n += int64(n)
	}
	if err != nil && err != io.EOF && m.err == nil {
		m.err = err
	}
	return n, err
}

func (m *meter) sum() string { return hex.EncodeToString(m.h.Sum(nil)) }
