package site

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// The site's span of an order: order.apply, from the order's proposal to
// its applying. It is started here, before proposing, and its
// traceparent put on the order (the state machine copies it to the
// order's workflow and jobs), so that applying reads no randomness.

// tracerName names the site's tracer, taken from the global provider
// at each span (a provider set later, as tests do, is the one used).
const tracerName = "github.com/outposthq/outpost/appliance/internal/site"

// startApply starts order o's order.apply span, a child of the
// traceparent o comes with (central's order.place span) if it has one,
// else of ctx's span (a root if ctx holds none), and sets o's
// traceparent to the new span's. Without a recording provider (tracing
// off, unit tests) the order keeps what it came with.
func startApply(ctx context.Context, o *store.Order) (context.Context, trace.Span) {
	if o.Traceparent != "" {
		ctx = tracing.WithRemoteParent(ctx, o.Traceparent)
	}
	attrs := []attribute.KeyValue{attribute.String(tracing.AttrOrder, o.ID), attribute.String(tracing.AttrMachine, o.MachineID),
		attribute.String("outpost.action", o.Action)}
	if o.Image != "" {
		attrs = append(attrs, attribute.String(tracing.AttrImage, o.Image))
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, tracing.SpanOrderApply, trace.WithAttributes(attrs...))
	if tp := tracing.Traceparent(ctx); tp != "" && span.IsRecording() {
		o.Traceparent = tp
	}
	return ctx, span
}

// endApply ends an order.apply span with what the proposal came to.
func endApply(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
