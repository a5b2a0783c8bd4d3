package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// errorBody is the JSON shape of every error response.
type errorBody = httpapi.ErrorBody

// Codes beyond the domain's (errs).
const (
	codeUnavailable = httpapi.CodeUnavailable
	codeInternal    = httpapi.CodeInternal
)

// writeError answers with err, as PublicError shows it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpapi.WriteError(w, PublicError(s.log, r, err))
}

// PublicError is what a client is shown of err (the API's answers, the
// console's pages). Domain errors are shown as they are; a store that
// cannot write (no leader, a full disk) is unavailable; any other error
// is logged and shown as a generic message, so internal detail never
// reaches a client.
func PublicError(log *slog.Logger, r *http.Request, err error) *errs.Error {
	e, ok := errs.AsError(err)
	switch {
	case ok:
	case errors.Is(err, site.ErrNoLeader), errors.Is(err, context.DeadlineExceeded):
		e = &errs.Error{Code: codeUnavailable, Message: "the cluster has no leader; try again"}
	case errors.Is(err, site.ErrUnknownOutcome):
		e = &errs.Error{Code: codeUnavailable, Message: "the leader changed while committing: the write may or may not have been applied; read before retrying"}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		log.LogAttrs(r.Context(), slog.LevelError, "request not stored: the disk is full",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		e = &errs.Error{Code: codeUnavailable, Message: "the appliance's disk is full: nothing was written; retry once space is freed"}
	default:
		log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		e = &errs.Error{Code: codeInternal, Message: "internal error; see the appliance log"}
	}
	return e
}

// writeJSON answers with status and v as indented JSON.
func writeJSON(w http.ResponseWriter, status int, v any) { httpapi.WriteJSON(w, status, v) }
