// Package apiclient is the client side of the JSON API conventions both
// sides serve (package httpapi): a bearer token, JSON bodies, and errors
// as {"error": {"code", "field", "message"}}. The appliance's client and
// central's (central/client) send their requests through it, so that one
// CLI reads the answers of both alike.
//
// The HTTP client, and with it the transport and its TLS configuration
// (a pinned CA), is the caller's.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// Client sends requests to one API.
type Client struct {
	// Base is the API's URL, "https://host:port", with no trailing slash.
	Base string
	// Token is the bearer token; "" sends none.
	Token string
	// HTTP sends the requests.
	HTTP *http.Client
}

// Error is an error answer from the API.
type Error struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// Send sends a request with an optional JSON body, decodes a JSON answer
// into out (if not nil) and returns the HTTP status of a successful
// answer. An error answer is an *Error. Header pairs (name, value) may
// follow.
func (c *Client) Send(ctx context.Context, method, path string, body json.RawMessage, out any, header ...string) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("client: read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, DecodeError(resp.StatusCode, answer)
	}
	if out != nil && len(answer) > 0 {
		if err := json.Unmarshal(answer, out); err != nil {
			return resp.StatusCode, fmt.Errorf("client: decode answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// Do is Send with a body to encode as JSON (nil: none).
func (c *Client) Do(ctx context.Context, method, path string, body, out any, header ...string) error {
	var raw json.RawMessage
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		raw = b
	}
	_, err := c.Send(ctx, method, path, raw, out, header...)
	return err
}

// DecodeError makes an error answer with status and body raw an *Error:
// the API's own error, or the body as it came.
func DecodeError(status int, raw []byte) error {
	var body struct {
		Error *errs.Error `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		return &Error{Status: status, Code: body.Error.Code, Field: body.Error.Field, Message: body.Error.Message}
	}
	return &Error{Status: status, Code: "http", Message: strings.TrimSpace(string(raw))}
}
