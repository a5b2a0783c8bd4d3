package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/tracing"
)

// Traces gathers a trace's spans from every node of the site (package
// cluster's Node): each node keeps the spans it recorded.
type Traces interface {
	// TraceSpans returns the trace's spans by start, with an error
	// naming the nodes it could not reach beside the others' spans.
	TraceSpans(ctx context.Context, traceID string) ([]tracing.Span, error)
}

// Trace is a trace as the API shows it (GET /v1/traces/{trace_id}): its
// spans, the phases of the provision read from them, how whole it is,
// and, when some node could not be reached, which (its spans are
// missing).
type Trace struct {
	TraceID      string               `json:"trace_id"`
	Spans        []tracing.Span       `json:"spans"`
	Phases       []tracing.Phase      `json:"phases"`
	Completeness tracing.Completeness `json:"completeness"`
	Partial      string               `json:"partial,omitempty"`
}

// GatherTrace reads trace traceID from every node of the site. Only a
// trace no node could be asked for is an error.
func GatherTrace(ctx context.Context, t Traces, traceID string) (*Trace, error) {
	if b, err := hex.DecodeString(traceID); err != nil || len(b) != 16 {
		return nil, notFound("no trace %.40q: a trace id is 32 hexadecimal digits", traceID)
	}
	if t == nil {
		return nil, notFound("trace %s: this appliance keeps no spans", traceID)
	}
	spans, err := t.TraceSpans(ctx, traceID)
	out := &Trace{TraceID: traceID, Spans: spans, Phases: tracing.Phases(spans), Completeness: tracing.Check(spans)}
	if out.Spans == nil {
		out.Spans = []tracing.Span{}
	}
	if out.Phases == nil {
		out.Phases = []tracing.Phase{}
	}
	if err != nil {
		if len(spans) == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		out.Partial = "some nodes could not be asked: " + err.Error()
	}
	return out, nil
}

// MachineTraceID is the trace id of machine id's latest workflow (its
// current one, or the last to end), or an error naming what is missing.
func MachineTraceID(db *store.DB, id string) (string, error) {
	var tp string
	err := db.View(func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, id)
		if err != nil {
			return err
		}
		if m.Workflow == "" {
			return notFound("machine %s has had no workflow: it has no trace", id)
		}
		w, err := store.Get[store.Workflow](tx, m.Workflow)
		if errors.Is(err, errs.ErrNotFound) {
			return notFound("machine %s's workflow %s is gone: it has no trace", id, m.Workflow)
		} else if err != nil {
			return err
		}
		tp = w.Traceparent
		if tp == "" {
			return notFound("machine %s's workflow %s has no trace (it was not made by an order)", id, w.ID)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return tracing.TraceID(tp), nil
}

func (s *Server) getTrace(w http.ResponseWriter, r *http.Request) {
	t, err := GatherTrace(r.Context(), s.traces, r.PathValue("trace_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) machineTrace(w http.ResponseWriter, r *http.Request) {
	id, err := MachineTraceID(s.db, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := GatherTrace(r.Context(), s.traces, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

// traced names each route's span (otelhttp's, started before routing)
// by the route's pattern: span names stay few, and hold no path values.
func traced(routes []httpapi.Route) []httpapi.Route {
	for i := range routes {
		h, pattern := routes[i].Handler, routes[i].Pattern
		routes[i].Handler = func(w http.ResponseWriter, r *http.Request) {
			if route, ok := r.Context().Value(routeKey{}).(*string); ok {
				*route = pattern
			}
			trace.SpanFromContext(r.Context()).SetName(pattern)
			h(w, r)
		}
	}
	return routes
}

// routeKey holds, in a request's context, where traced writes the
// pattern of the route that served it (the outer mux knows only "/").
type routeKey struct{}

// withSpans records a span of each API request that changes something
// or whose caller traces it (tracing.TraceRequest), a child of the
// caller's traceparent header if it sent one, named by its route.
func withSpans(h http.Handler) http.Handler {
	spans := otelhttp.NewHandler(h, "appliance.api",
		otelhttp.WithFilter(tracing.TraceRequest),
		otelhttp.WithSpanNameFormatter(func(op string, r *http.Request) string {
			if route, ok := r.Context().Value(routeKey{}).(*string); ok && *route != "" {
				return *route
			}
			if r.Pattern != "" && r.Pattern != "/" {
				return r.Pattern
			}
			return "HTTP " + httpMethod(r.Method)
		}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spans.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, new(string))))
	})
}

// httpMethod is r's method if it is a standard one, else "other" (span
// names stay few).
func httpMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// notFound is a not-found error with its own message.
func notFound(format string, args ...any) *errs.Error {
	return &errs.Error{Code: errs.CodeNotFound, Message: fmt.Sprintf(format, args...)}
}
