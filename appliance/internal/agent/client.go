package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/internal/backoff"
)

// userAgent names the agent in its requests.
const userAgent = "outpost-agent"

// StatusError is a final answer of the agent API: a status the agent does
// not retry the request for (400 or 409, and whatever else the caller
// names), with the error the appliance gave.
type StatusError struct {
	Status  int
	Code    string
	Message string
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Code, msg)
	}
	return fmt.Sprintf("%d: %s", e.Status, msg)
}

// client sends requests to the agent API and retries them until they are
// answered.
type client struct {
	cfg   *Config
	app   *appliance // outpost.url, and where the appliance is now
	token string
	log   *slog.Logger // for requests that are no action's
}

// call sends a request with body (JSON, or none if nil) until it is
// answered, logging with log (the client's if nil): 200 decodes the
// answer into out (if not nil) and returns nil; 400, 409 and the final
// statuses return a *StatusError; 401 is logged and retried after
// AuthRetry; anything else is retried with backoff. It returns ctx's
// error when ctx ends first.
func (c *client) call(ctx context.Context, log *slog.Logger, method, path string, body, out any, final ...int) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
	}
	if log == nil {
		log = c.log
	}
	log = log.With("request", method+" "+path)
	var failures int
	var lastLog time.Time
	for {
		status, err := c.try(ctx, method, path, payload, out)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.app.answered(ctx, !unanswered(status, err))
		switch {
		case err == nil:
			if failures > 0 {
				log.Info("appliance answered again", "tries", failures+1)
			}
			return nil
		case status == http.StatusBadRequest || status == http.StatusConflict || isFinal(status, final):
			return err
		case status == http.StatusUnauthorized:
			failures++
			log.Error("appliance refused the credential (check "+agentproto.ParamToken+"); retrying",
				"err", err, "retry_in", c.cfg.AuthRetry)
			if !backoff.Sleep(ctx, c.cfg.AuthRetry) {
				return ctx.Err()
			}
			continue
		}
		failures++
		if failures == 1 || time.Since(lastLog) >= 30*time.Second {
			log.Warn("appliance unreachable or failing; retrying", "err", err, "tries", failures)
			lastLog = time.Now()
		}
		if !backoff.Sleep(ctx, c.cfg.retry().Wait(failures)) {
			return ctx.Err()
		}
	}
}

func isFinal(status int, final []int) bool {
	for _, s := range final {
		if s == status {
			return true
		}
	}
	return false
}

// try sends one request. It returns the status of an answer other than
// 200 with a *StatusError, or 0 with the network or decoding error.
func (c *client) try(ctx context.Context, method, path string, payload []byte, out any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.app.url().String()+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, statusError(resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, fmt.Errorf("decode answer: %w", err)
		}
	}
	return http.StatusOK, nil
}

// unanswered reports whether a request that ended with status and err
// got no answer from the appliance: refused, reset, timed out or cut off.
func unanswered(status int, err error) bool {
	var ne net.Error
	return status == 0 && errors.As(err, &ne)
}

// statusError makes the error of an answer from its body.
func statusError(status int, body []byte) *StatusError {
	e := &StatusError{Status: status}
	var ae agentproto.Error
	if json.Unmarshal(body, &ae) == nil && (ae.Error.Code != "" || ae.Error.Message != "") {
		e.Code, e.Message = ae.Error.Code, ae.Error.Message
		if ae.Error.Field != "" {
			e.Message = ae.Error.Field + ": " + e.Message
		}
		return e
	}
	if len(body) > 200 {
		body = body[:200]
	}
	e.Message = string(bytes.TrimSpace(body))
	return e
}

// isStatus reports whether err is a *StatusError with the given status.
func isStatus(err error, status int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == status
}
