package orders

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// tracerName names the tracer of this package's spans. The tracer is
// the global provider's at each use, not one kept from package
// initialization: that one would stay bound to the first provider ever
// set (otel's delegation), though a program (or a test) sets another.
const tracerName = "github.com/outposthq/outpost/central/internal/orders"

// StartPlace starts the order.place span of o, placed on site: the root
// of the order's own trace (one trace per order), linked to the span of
// the request that placed it (in ctx, if any), and puts its traceparent
// on o, which carries it to the site. The caller ends the span once the
// order is placed (EndPlace). Without a tracing provider (tests) the
// span records nothing and o gets no traceparent.
func StartPlace(ctx context.Context, site string, o *syncproto.Order) trace.Span {
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String(tracing.AttrOrder, o.ID), attribute.String(tracing.AttrSite, site),
			attribute.String(tracing.AttrMachine, o.MachineID))}
	if o.Image != "" {
		opts = append(opts, trace.WithAttributes(attribute.String(tracing.AttrImage, o.Image)))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, tracing.SpanOrderPlace, opts...)
	o.Traceparent = tracing.Traceparent(ctx)
	return span
}

// EndPlace ends an order.place span: refused, if the order was (why, in
// words: never the order's values).
func EndPlace(span trace.Span, refused string) {
	if refused != "" {
		span.SetStatus(codes.Error, refused)
	}
	span.End()
}
