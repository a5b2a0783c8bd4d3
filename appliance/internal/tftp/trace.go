package tftp

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
)

// Attributes of a TFTP read's span, besides tracing.AttrMachine and
// tracing.AttrMAC.
const (
	attrFile  = "outpost.tftp.file" // the name asked for, escaped
	attrBytes = "outpost.bytes_sent"
)

// startSpan starts the span of a read request, tftp.read, child of the
// trace of the machine at the client's address; a span that records
// nothing if it has none (or Config.Traces is nil).
func (s *Server) startSpan(ua *net.UDPAddr, name string) trace.Span {
	if s.cfg.Traces == nil {
		return trace.SpanFromContext(context.Background())
	}
	addr, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return trace.SpanFromContext(context.Background())
	}
	mt, err := s.cfg.Traces.ForAddr(addr.Unmap())
	if err != nil {
		s.log.Warn("tftp: the machine's trace", "client", ua.String(), "err", err)
	}
	if !mt.Traced() {
		return trace.SpanFromContext(context.Background())
	}
	_, span := otel.Tracer("github.com/outposthq/outpost/appliance/internal/tftp").Start(
		tracing.WithRemoteParent(context.Background(), mt.Traceparent), tracing.SpanTFTP,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String(tracing.AttrMachine, mt.Machine), attribute.String(tracing.AttrMAC, mt.MAC),
			attribute.String(attrFile, sanitize(name))))
	return span
}

// endSpan ends a read's span with what was sent and how it ended.
func endSpan(span trace.Span, n int64, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.Int64(attrBytes, n))
	switch {
	case errors.Is(err, errNotFound):
		span.SetStatus(codes.Error, "file not found")
	case err != nil:
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
