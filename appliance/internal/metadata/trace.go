package metadata

import (
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
)

// Attributes of a metadata request's span, besides tracing.AttrMachine
// and tracing.AttrMAC. What was answered (user-data, keys) is never in
// it: only the path asked for and the status.
const (
	attrIP     = "outpost.ip"
	attrPath   = "url.path"
	attrStatus = "http.response.status_code"
)

// spanWriter is a response writer that records its status for the
// request's span.
type spanWriter struct {
	http.ResponseWriter
	span   trace.Span
	status int
}

func (w *spanWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *spanWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// startSpan starts a traced machine's request's span, metadata.get,
// child of its trace, from start (the request's arrival).
func (s *Server) startSpan(w http.ResponseWriter, r *http.Request, in *instance, start time.Time) (*spanWriter, *http.Request) {
	ctx, span := otel.Tracer("github.com/outposthq/outpost/appliance/internal/metadata").Start(
		tracing.WithRemoteParent(r.Context(), in.trace.Traceparent), tracing.SpanMetadata,
		trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String(tracing.AttrMachine, in.machine.ID), attribute.String(tracing.AttrMAC, in.mac),
			attribute.String(attrIP, in.addr.String()), attribute.String(attrPath, r.URL.Path)))
	return &spanWriter{ResponseWriter: w, span: span}, r.WithContext(ctx)
}

// endSpan ends the span with the answer's status.
func endSpan(w http.ResponseWriter) {
	sw := w.(*spanWriter)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	sw.span.SetAttributes(attribute.Int(attrStatus, sw.status))
	if sw.status >= 400 {
		sw.span.SetStatus(codes.Error, http.StatusText(sw.status))
	}
	sw.span.End()
}
