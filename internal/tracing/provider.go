package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says where a program's spans go.
type Config struct {
	// Service is the program's name (centrald, applianced,
	// outpost-agent); Node the node's within its site or cluster.
	Service, Node string
	// Store keeps the spans on this node; Send, if set, is called with
	// each batch instead or as well (the agent sends its spans to the
	// appliance). A batch Send fails is dropped after the error is
	// logged: tracing never holds up the work it traces.
	Store *Store
	Send  func(ctx context.Context, spans []Span) error
	// OTLPEndpoint, if set, exports spans by OTLP over HTTP as well
	// (http://host:4318, or https). Start takes it from the environment
	// (OTEL_EXPORTER_OTLP_ENDPOINT) if it is empty.
	OTLPEndpoint string
	// Batch is how long finished spans wait to be written together (1 s
	// if zero).
	Batch time.Duration
	Log   *slog.Logger
}

// Provider is a program's tracer provider. Its tracers record spans
// that go where the Config said.
type Provider struct {
	sdk *sdktrace.TracerProvider
	// relay exports by OTLP the spans other programs recorded (Relay);
	// nil when the provider exports nothing by OTLP.
	relay sdktrace.SpanProcessor
	off   bool // OUTPOST_TRACING=off: nothing is recorded
}

// Recording says whether the provider records spans (tracing is not
// off), so that a caller can skip the work of finding a span's parent
// when no span would be recorded.
func (p *Provider) Recording() bool { return p != nil && !p.off }

// Off is the environment variable that turns tracing off in a program
// (OUTPOST_TRACING=off): its spans are not recorded at all (the
// benchmarks compare the two). Tracing is on by default.
const Off = "OUTPOST_TRACING"

// Start makes the program's Provider and makes it OpenTelemetry's
// global one, with W3C trace context as the propagator; with
// OUTPOST_TRACING=off in the environment, a Provider that records
// nothing.
func Start(cfg Config) (*Provider, error) {
	if cfg.Service == "" {
		return nil, errors.New("tracing: a provider needs its service's name")
	}
	if os.Getenv(Off) == "off" {
		p := &Provider{sdk: sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())), off: true}
		otel.SetTracerProvider(p.sdk)
		otel.SetTextMapPropagator(propagation.TraceContext{})
		return p, nil
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = time.Second
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(cfg.Service)}
	if cfg.Node != "" {
		attrs = append(attrs, semconv.ServiceInstanceID(cfg.Node))
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, attrs...)
	// The counts Span.Validate allows (attrMap clips the lengths): a
	// span this node records is never one another refuses.
	limits := sdktrace.NewSpanLimits()
	limits.AttributeCountLimit, limits.EventCountLimit, limits.AttributePerEventCountLimit = MaxAttrs, MaxEvents, MaxAttrs
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithRawSpanLimits(limits)}
	if cfg.Store != nil || cfg.Send != nil {
		exp := &exporter{store: cfg.Store, send: cfg.Send, log: cfg.Log}
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(cfg.Batch)))
	}
	endpoint := cfg.OTLPEndpoint
	if endpoint == "" {
		endpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	var relay sdktrace.SpanProcessor
	if endpoint != "" {
		// The exporter reads the endpoint (and the rest of its
		// OTEL_EXPORTER_OTLP_* settings) from the environment itself;
		// an explicit one wins.
		var eo []otlptracehttp.Option
		if cfg.OTLPEndpoint != "" {
			eo = append(eo, otlptracehttp.WithEndpointURL(cfg.OTLPEndpoint+"/v1/traces"))
		}
		exp, err := otlptracehttp.New(context.Background(), eo...)
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", endpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(cfg.Batch)))
		relay = sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBatchTimeout(cfg.Batch))
	}
	p := &Provider{sdk: sdktrace.NewTracerProvider(opts...), relay: relay}
	otel.SetTracerProvider(p.sdk)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return p, nil
}

// Tracer returns a tracer of the provider, named for the package that
// records with it.
func (p *Provider) Tracer(name string) trace.Tracer { return p.sdk.Tracer(name) }

// Flush writes every span finished so far (before a reboot, or in a
// test that reads them).
func (p *Provider) Flush(ctx context.Context) error {
	err := p.sdk.ForceFlush(ctx)
	if p.relay != nil {
		err = errors.Join(err, p.relay.ForceFlush(ctx))
	}
	return err
}

// Shutdown flushes and stops the provider.
func (p *Provider) Shutdown(ctx context.Context) error {
	err := p.sdk.Shutdown(ctx)
	if p.relay != nil {
		err = errors.Join(err, p.relay.Shutdown(ctx))
	}
	return err
}

// Relay exports by OTLP, when the provider exports by OTLP, spans that
// another program recorded and cannot export itself: the installer's
// agent sends its spans to the appliance, which keeps them and relays
// them, so that an OTLP receiver holds whole traces. The spans are
// queued (beyond the queue's bound they are dropped, never waited for).
// Spans a site forwards to central are not relayed: the site exports
// its own.
func (p *Provider) Relay(spans []Span) {
	if p.relay == nil {
		return
	}
	for i := range spans {
		p.relay.OnEnd(toSDK(&spans[i]))
	}
}

// Received keeps the spans another program sent (Add): in Store, and
// relayed by OTLP through Provider if it exports so.
type Received struct {
	Store    *Store
	Provider *Provider
}

// Add keeps spans, then relays them.
func (r Received) Add(spans []Span) error {
	if err := r.Store.Add(spans); err != nil {
		return err
	}
	if r.Provider != nil {
		r.Provider.Relay(spans)
	}
	return nil
}

// exporter writes batches of finished spans to a Store and/or sends
// them.
type exporter struct {
	store *Store
	send  func(context.Context, []Span) error
	log   *slog.Logger
}

func (e *exporter) ExportSpans(ctx context.Context, in []sdktrace.ReadOnlySpan) error {
	spans := make([]Span, len(in))
	for i, s := range in {
		spans[i] = FromSDK(s)
	}
	var errs []error
	if e.store != nil {
		if err := e.store.Add(spans); err != nil {
			errs = append(errs, err)
		}
	}
	if e.send != nil {
		if err := e.send(ctx, spans); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		e.log.Warn("spans lost", "spans", len(spans), "err", err)
	}
	return nil
}

func (e *exporter) Shutdown(context.Context) error { return nil }
