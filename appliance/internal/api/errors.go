package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error *store.Error `json:"error"`
}

// statusOf maps a domain error code to an HTTP status.
func statusOf(code string) int {
	switch code {
	case store.CodeInvalid:
		return http.StatusBadRequest
	case store.CodeNotFound:
		return http.StatusNotFound
	case store.CodeConflict:
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
	e, ok := store.AsError(err)
	switch {
	case ok:
	case errors.Is(err, replica.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		e = &store.Error{Code: codeUnavailable, Message: "the cluster has no leader; try again"}
	case errors.Is(err, replica.ErrUnknownOutcome):
		e = &store.Error{Code: codeUnavailable, Message: "the leader changed while committing: the write may or may not have been applied; read before retrying"}
	default:
		s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		e = &store.Error{Code: codeInternal, Message: "internal error; see the appliance log"}
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
