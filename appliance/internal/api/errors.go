package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/errs"
)

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error *errs.Error `json:"error"`
}

// statusOf maps a domain error code to an HTTP status.
func statusOf(code string) int {
	switch code {
	case errs.CodeInvalid:
		return http.StatusBadRequest
	case errs.CodeNotFound:
		return http.StatusNotFound
	case errs.CodeConflict:
		return http.StatusConflict
	case codeUnauthorized:
		return http.StatusUnauthorized
	case codeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Codes beyond the store's.
const (
	codeUnauthorized = "unauthorized"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// writeError answers with err. Domain errors are shown as they are; any
// other error is logged and answered with a generic message, so internal
// detail never reaches a client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := errs.AsError(err)
	switch {
	case ok:
	case errors.Is(err, site.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		e = &errs.Error{Code: codeUnavailable, Message: "the cluster has no leader; try again"}
	case errors.Is(err, site.ErrUnknownOutcome):
		e = &errs.Error{Code: codeUnavailable, Message: "the leader changed while committing: the write may or may not have been applied; read before retrying"}
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		e = &errs.Error{Code: codeInternal, Message: "internal error; see the appliance log"}
	}
	writeJSON(w, statusOf(e.Code), errorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
