package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/outposthq/outpost/internal/backoff"
)

// requestTimeout bounds one HTTP request (the agent's default).
const requestTimeout = 30 * time.Second

// get sends GET url (with header pairs) until it is answered, retrying
// transient failures, and returns at most limit bytes of the body; an
// answer other than want is an error.
func get(ctx context.Context, hc *http.Client, stats *Stats, what, url string, want int, limit int64, header ...string) ([]byte, error) {
	var body []byte
	err := retry(ctx, stats, what, func() (string, error) {
		status, b, err := try(ctx, hc, http.MethodGet, url, nil, limit, header...)
		if err == nil && status != want {
			err = fmt.Errorf("%s %s: HTTP %d: %s", what, url, status, bytes.TrimSpace(b))
		}
		body = b
		return transientKind(status, err), err
	})
	return body, err
}

// try sends one request and reads at most limit bytes of the answer. The
// status is 0 when there is no answer.
func try(ctx context.Context, hc *http.Client, method, url string, body []byte, limit int64, header ...string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	return resp.StatusCode, b, nil
}

// transientKind says why a failed request is worth retrying, as the agent
// would (no answer, 5xx, 408, 429), or "" when it is not.
func transientKind(status int, err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case status == 0 && errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case status == 0 && errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case status == 0 && (errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case status == 0:
		return "network error"
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return "HTTP " + strconv.Itoa(status)
	}
	return ""
}

// retry calls try until it succeeds or fails for good (try says why a
// failure is transient, or ""), waiting between tries as the agent does:
// exponential backoff from 250 ms to 5 s, with jitter. Each retry is
// counted in stats.
func retry(ctx context.Context, stats *Stats, what string, try func() (transient string, err error)) error {
	for n := 1; ; n++ {
		kind, err := try()
		if err == nil || kind == "" || ctx.Err() != nil {
			return err
		}
		stats.count("retried " + what + ": " + kind)
		if !backoff.Sleep(ctx, retryBackoff.Wait(n)) {
			return fmt.Errorf("%w (gave up after %d tries)", err, n)
		}
	}
}

// retryBackoff is a simulated firmware's or agent's wait between tries:
// from 250 ms, doubling, at most 5 s, jittered.
var retryBackoff = backoff.Exponential{Base: 250 * time.Millisecond, Max: 5 * time.Second}
