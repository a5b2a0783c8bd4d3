package jobs

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// Attributes of a BMC job's span, besides tracing.AttrMachine and
// tracing.AttrOrder. Nothing secret goes in a span: the BMC's address,
// never its user or password.
const (
	attrJob     = "outpost.job"
	attrAttempt = "outpost.attempt"
	attrDriver  = "outpost.bmc.driver"
	attrAddress = "outpost.bmc.address"
	attrPower   = "outpost.power"
)

// startSpan starts the span of one execution of job j, "bmc.<action>",
// child of the job's traceparent; a job without one records nothing.
func startSpan(ctx context.Context, j *store.Job, attempt int) (context.Context, trace.Span) {
	if j.Traceparent == "" {
		return ctx, trace.SpanFromContext(context.Background()) // records nothing
	}
	attrs := []attribute.KeyValue{
		attribute.String(tracing.AttrMachine, j.MachineID), attribute.String(attrJob, j.ID), attribute.Int(attrAttempt, attempt),
	}
	if j.Order != "" {
		attrs = append(attrs, attribute.String(tracing.AttrOrder, j.Order))
	}
	return otel.Tracer("github.com/outposthq/outpost/appliance/internal/jobs").Start(
		tracing.WithRemoteParent(ctx, j.Traceparent), tracing.SpanBMCPrefix+j.Action,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endSpan ends a job execution's span with its result.
func endSpan(span trace.Span, t Target, res site.JobResult) {
	if !span.IsRecording() {
		return
	}
	if t.Driver != "" {
		span.SetAttributes(attribute.String(attrDriver, t.Driver))
	}
	if t.Address != "" {
		span.SetAttributes(attribute.String(attrAddress, t.Address))
	}
	if res.Power != "" {
		span.SetAttributes(attribute.String(attrPower, res.Power))
	}
	if res.Warning != "" {
		span.AddEvent("warning", trace.WithAttributes(attribute.String("message", res.Warning)))
	}
	if !res.OK {
		span.SetStatus(codes.Error, res.Error)
	}
	span.End()
}
