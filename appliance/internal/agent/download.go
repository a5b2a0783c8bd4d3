package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/internal/backoff"
)

// errStartOver: a broken download cannot go on from where it broke (the
// source changed, ignores Range, or gave nothing to check it did not
// change): the image is written again from its start.
var errStartOver = errors.New("the download starts over")

// download is an image's body read across breaks. When the body breaks
// (an error, the stall watchdog) after n bytes, it asks for the rest
// with "Range: bytes=n-" and "If-Range: <the first answer's ETag>" and
// goes on from there, so that the decompressor and the hasher reading it
// never notice. A source that cannot go on from n ends it with
// errStartOver. Other errors it returns are final for this download: a
// permanent one, or the attempt's end.
type download struct {
	s     *step
	ctx   context.Context // the attempt's
	u     *url.URL
	tries *int // failed tries of the image write, for the retry schedule
	stall time.Duration

	total     int64  // the image's size, from the first answer; -1 unknown
	validator string // the first answer's strong ETag, else its Last-Modified
	n         int64  // bytes read
	resumes   int
	lastErr   error // why the body broke last
	err       error // why it cannot go on: every read returns it

	body   io.ReadCloser
	reqCtx context.Context // the current request's

	mu     sync.Mutex              // guards cancel, which the watchdog calls
	cancel context.CancelCauseFunc // the current request's
	dog    *time.Timer             // the stall watchdog
}

// openDownload sends the image's first request.
func (s *step) openDownload(ctx context.Context, u *url.URL, tries *int) (*download, error) {
	d := &download{s: s, ctx: ctx, u: u, tries: tries, stall: s.cfg().StallTimeout, total: -1}
	d.dog = time.AfterFunc(d.stall, d.stalled)
	resp, err := d.request(0)
	if err != nil {
		d.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		d.Close()
		return nil, fmt.Errorf("download %s: %s to a request of the whole image", redacted(u), resp.Status)
	}
	d.body, d.total, d.validator = resp.Body, resp.ContentLength, validator(resp.Header)
	return d, nil
}

// validator is what a resumed request's If-Range names: a strong ETag,
// else the Last-Modified date; "" if the answer has neither.
func validator(h http.Header) string {
	if e := h.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		return e
	}
	return h.Get("Last-Modified")
}

// request asks for the image from byte from on, under a fresh request
// context that the stall watchdog ends.
func (d *download) request(from int64) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(d.ctx)
	d.mu.Lock()
	d.reqCtx, d.cancel = ctx, cancel
	d.mu.Unlock()
	d.dog.Reset(d.stall)
	h := http.Header{}
	if from > 0 {
		h.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
		h.Set("If-Range", d.validator)
	}
	resp, err := d.s.get(ctx, d.s.r.c.app.current(d.u), h)
	if err != nil {
		err = cause(ctx, err)
		cancel(nil)
		return nil, err
	}
	return resp, nil
}

// stalled ends the current request: nothing came for the stall timeout.
func (d *download) stalled() {
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if cancel != nil {
		cancel(fmt.Errorf("%w: no data for %s", errStalled, d.stall))
	}
}

func (d *download) Read(p []byte) (int, error) {
	for {
		if d.err != nil {
			return 0, d.err
		}
		if d.body == nil {
			if d.err = d.resume(); d.err != nil {
				return 0, d.err
			}
		}
		n, err := d.body.Read(p)
		if n > 0 {
			d.n += int64(n)
			d.dog.Reset(d.stall)
		}
		if err == nil {
			return n, nil
		}
		if d.total >= 0 && d.n >= d.total || d.total < 0 && err == io.EOF {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // short of its length
		}
		d.broke(err)
		if n > 0 {
			return n, nil // and resume at the next read
		}
	}
}

// broke drops the current body, which failed with err.
func (d *download) broke(err error) {
	d.lastErr = cause(d.reqCtx, err)
	d.body.Close()
	d.body = nil
	d.mu.Lock()
	d.cancel(nil)
	d.mu.Unlock()
	d.s.log.Warn("download broke; resuming it", "url", redacted(d.u), "at", d.n, "of", d.total, "err", d.lastErr)
}

// resume asks for the rest of the image, with the retry schedule's wait
// before each try, until an answer goes on from d.n, or cannot, or the
// attempt ends.
func (d *download) resume() error {
	if d.validator == "" {
		return fmt.Errorf("%w: %v, and the source gave no ETag or Last-Modified to resume by", errStartOver, d.lastErr)
	}
	for {
		*d.tries++
		if !backoff.Sleep(d.ctx, d.s.cfg().retry().Wait(*d.tries)) {
			return fmt.Errorf("%w (gave up after %d tries)", d.lastErr, *d.tries)
		}
		resp, err := d.request(d.n)
		if err == nil {
			if err = d.goesOn(resp); err != nil {
				resp.Body.Close()
				return err
			}
			d.body = resp.Body
			d.resumes++
			d.s.log.Info("download resumed", "url", redacted(d.u), "at", d.n, "resumes", d.resumes)
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) || errors.Is(err, errStartOver) || d.ctx.Err() != nil {
			return err
		}
		d.lastErr = err
		d.s.log.Warn("download still broken", "url", redacted(d.u), "at", d.n, "err", err, "try", *d.tries)
	}
}

// goesOn checks that an answer to a resumed request is the rest of the
// same image: a 206 from byte d.n of an image of the same size.
func (d *download) goesOn(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return fmt.Errorf("%w: asked for bytes %d- and got the whole image (the source changed, or ignores Range)", errStartOver, d.n)
	}
	var first, last int64
	var size string
	_, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%s", &first, &last, &size)
	if err != nil || first != d.n || (d.total >= 0 && size != strconv.FormatInt(d.total, 10)) {
		return fmt.Errorf("%w: asked for bytes %d- of %d and got %q", errStartOver, d.n, d.total, resp.Header.Get("Content-Range"))
	}
	return nil
}

// Close stops the watchdog and ends the current request.
func (d *download) Close() {
	d.dog.Stop()
	if d.body != nil {
		d.body.Close()
	}
	d.mu.Lock()
	if d.cancel != nil {
		d.cancel(nil)
	}
	d.mu.Unlock()
}
