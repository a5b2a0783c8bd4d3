package tracing

import (
	"context"
	"fmt"
	"net/http"
	"regexp"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Traceparent is the W3C traceparent of the span in ctx
// ("00-<trace id>-<span id>-01"), or "" if ctx holds none: what crosses
// a process boundary that is not an HTTP request (the sync protocol's
// order, a workflow, the installer's kernel command line).
func Traceparent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

// ValidTraceparent checks a traceparent read from outside: empty (no
// trace) or W3C's version 00 form with ids that are not zero.
func ValidTraceparent(tp string) error {
	if tp == "" {
		return nil
	}
	if !traceparentRE.MatchString(tp) {
		return fmt.Errorf("traceparent %q is not 00-<32 hex>-<16 hex>-<2 hex>", tp)
	}
	if !trace.SpanContextFromContext(WithRemoteParent(context.Background(), tp)).IsValid() {
		return fmt.Errorf("traceparent %q has a zero trace or span id", tp)
	}
	return nil
}

// WithRemoteParent returns ctx with the span tp names as the remote
// parent of the spans started from it; ctx unchanged if tp is empty or
// not a traceparent.
func WithRemoteParent(ctx context.Context, tp string) context.Context {
	if tp == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
}

// TraceID is the trace id of a traceparent, or "".
func TraceID(tp string) string {
	sc := trace.SpanContextFromContext(WithRemoteParent(context.Background(), tp))
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID().String()
}

// TraceRequest is the filter of the API servers' request spans
// (otelhttp.WithFilter): a request that changes something (any method
// but GET, HEAD and OPTIONS) is a span, and so is one that carries a
// traceparent (its caller traces it); a read nobody traces is none. The
// span stores are bounded and kept for provisions' traces: a console's
// or a script's polling, or a stream held open for hours, would crowd
// them out.
func TraceRequest(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return r.Header.Get("traceparent") != ""
	}
	return true
}
