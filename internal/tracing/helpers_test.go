package tracing_test

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func traceAttr(k, v string) trace.EventOption { return trace.WithAttributes(attribute.String(k, v)) }

// inSpan is a context holding s.
func inSpan(s trace.Span) context.Context { return trace.ContextWithSpan(context.Background(), s) }
