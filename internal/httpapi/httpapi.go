// Package httpapi holds the conventions of the JSON APIs both sides of
// Outpost serve (the appliance's and central's): a bearer token in the
// Authorization header, whose role each route checks (access.go); answers
// as indented JSON; and every error as {"error": {"code", "field",
// "message"}} (an errs.Error) with the HTTP status of its code.
package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
)

// Codes of the errors an API answers with beyond errs' own.
const (
	// CodeUnauthorized: no valid bearer token (401).
	CodeUnauthorized = "unauthorized"
	// CodeForbidden: the token's role does not allow the route (403).
	CodeForbidden = "forbidden"
	// CodeUnavailable: the request could not be taken now, such as
	// while a cluster has no leader; it may be retried (503).
	CodeUnavailable = "unavailable"
	// CodeInternal: a failure whose detail stays in the server's log
	// (500).
	CodeInternal = "internal"
	// CodeTooLarge: a request body over its route's limit (413).
	CodeTooLarge = "too_large"
	// CodeTimeout: a request body that did not arrive in time (408).
	CodeTimeout = "timeout"
)

// RetryAfter is the Retry-After, in seconds, of every 503 answer.
const RetryAfter = "5"

// ErrorBody is the JSON shape of every error answer.
type ErrorBody struct {
	Error *errs.Error `json:"error"`
}

// Status is the HTTP status of an error code; unknown codes are 500.
func Status(code string) int {
	switch code {
	case errs.CodeInvalid:
		return http.StatusBadRequest
	case errs.CodeNotFound:
		return http.StatusNotFound
	case errs.CodeConflict:
		return http.StatusConflict
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeTimeout:
		return http.StatusRequestTimeout
	}
	return http.StatusInternalServerError
}

// WriteJSON answers with status and v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// WriteError answers with e and the status of its code; a 503 says
// when to retry (Retry-After) unless the handler has said so.
func WriteError(w http.ResponseWriter, e *errs.Error) {
	status := Status(e.Code)
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", RetryAfter)
	}
	WriteJSON(w, status, ErrorBody{Error: e})
}

// ReadBody reads a request's JSON body whole, at most max bytes, for a
// route that needs a JSON value. It refuses, naming field "body", a body
// larger than max (CodeTooLarge), one that stopped arriving (CodeTimeout:
// the server's body deadline, see package httpserve), one that could not
// be read, and one that is empty or null.
func ReadBody(r *http.Request, max int64) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, max))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &errs.Error{Code: CodeTooLarge, Field: "body", Message: fmt.Sprintf("is larger than the limit of %d bytes", tooLarge.Limit)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, &errs.Error{Code: CodeTimeout, Field: "body", Message: "did not arrive in time"}
	case err != nil:
		return nil, errs.Invalid("body", "could not be read")
	}
	switch v := bytes.TrimSpace(raw); {
	case len(v) == 0:
		return nil, errs.Invalid("body", "is empty: send a JSON value")
	case string(v) == "null":
		return nil, errs.Invalid("body", "is null: send a JSON value")
	}
	return raw, nil
}

// Bearer returns the request's bearer token, or "" when it has none.
func Bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Unauthorized answers 401 to a request without a valid bearer token,
// naming realm in the WWW-Authenticate challenge.
func Unauthorized(w http.ResponseWriter, realm string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
	WriteError(w, &errs.Error{
		Code: CodeUnauthorized, Message: "a valid bearer token is required (Authorization: Bearer <token>)",
	})
}

// Pages of a sequence (events): a client reads ?limit= items after
// ?since=.
const (
	DefaultPage = 500
	MaxPage     = 10000
)

// PageQuery reads ?since= (0 if absent) and ?limit= (DefaultPage if
// absent, at most MaxPage).
func PageQuery(r *http.Request) (since uint64, limit int, err error) {
	q := r.URL.Query()
	if v := q.Get("since"); v != "" {
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, errs.Invalid("since", "%q is not a sequence number", v)
		}
	}
	limit = DefaultPage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > MaxPage {
			return 0, 0, errs.Invalid("limit", "must be between 1 and %d", MaxPage)
		}
	}
	return since, limit, nil
}
