package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
)

// The names of the agent's spans and of their attributes: package
// tracing's (SpanAgent, SpanActionPrefix, Attr*), which the agent does
// not import, to stay a small binary (tracing brings an OTLP exporter and
// a span store the installer has no use for). A test holds them equal.
const (
	serviceName      = "outpost-agent"
	spanRun          = "agent.run"
	spanActionPrefix = "action."
	attrActionType   = "outpost.action_type"
	attrMachine      = "outpost.machine"
	attrMAC          = "outpost.mac"
	attrBytes        = "outpost.bytes"
	attrAttempt      = "outpost.attempt"
	eventProgress    = "progress"
	// envTracing set to "off" records no span (tracing.Off).
	envTracing = "OUTPOST_TRACING"
)

// Limits that keep every span within what the appliance accepts of one
// (tracing's Span.Validate): a span over them would refuse its whole
// batch.
const (
	maxSpanName   = 200
	maxAttrLen    = 1024
	maxAttrs      = 64
	maxEvents     = 128
	maxBatchBytes = 4 << 20 // per request: well under the appliance's bound
)

// tracer records the agent's spans and sends them to the appliance
// (agentproto.PathSpans), in batches, in the background; flush sends
// what is finished before the machine goes down. Its spans descend from
// the workflow's traceparent only: without one, nothing is recorded.
type tracer struct {
	trace.Tracer
	provider *sdktrace.TracerProvider // nil when tracing is off
	cfg      *Config
	log      *slog.Logger
}

// newTracer returns the agent's tracer, which sends through c; node
// names this agent in its spans (the machine's id, or its MAC in
// discovery). With OUTPOST_TRACING=off it records nothing.
func newTracer(cfg *Config, c *client, node string, log *slog.Logger) *tracer {
	t := &tracer{cfg: cfg, log: log}
	if os.Getenv(envTracing) == "off" {
		t.Tracer = noop.NewTracerProvider().Tracer("")
		return t
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(serviceName), semconv.ServiceInstanceID(node))
	t.provider = sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{
			// The SDK counts characters; the appliance, bytes.
			AttributeValueLengthLimit:   maxAttrLen / utf8.UTFMax,
			AttributeValueDepthLimit:    sdktrace.DefaultAttributeValueDepthLimit,
			AttributeCountLimit:         maxAttrs,
			EventCountLimit:             maxEvents,
			AttributePerEventCountLimit: maxAttrs,
		}),
		sdktrace.WithBatcher(&spanSender{c: c, log: log}, sdktrace.WithBatchTimeout(cfg.TraceBatch)),
	)
	t.Tracer = t.provider.Tracer("github.com/outposthq/outpost/appliance/internal/agent")
	return t
}

// flush sends every span finished so far, waiting at most FlushTimeout:
// before the machine goes down (why says what is coming), the spans
// must have reached the appliance, but tracing never holds up the work
// it traces.
func (t *tracer) flush(log *slog.Logger, why string) {
	if t.provider == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.FlushTimeout)
	defer cancel()
	if err := t.provider.ForceFlush(ctx); err != nil {
		log.Warn("spans not all sent "+why, "err", err, "waited", t.cfg.FlushTimeout)
	}
}

// shutdown flushes and stops the tracer: the agent is stopping.
func (t *tracer) shutdown() {
	if t.provider == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.cfg.FlushTimeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		t.log.Warn("spans not all sent at exit", "err", err, "waited", t.cfg.FlushTimeout)
	}
}

// startRun starts the agent.run span of workflow wf under the trace of
// traceparent tp; without a valid tp it records nothing and returns a
// span that records nothing.
func (t *tracer) startRun(tp string, wf *agentproto.Workflow, p Params) trace.Span {
	parent := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp})
	if !trace.SpanContextFromContext(parent).IsValid() {
		return trace.SpanFromContext(context.Background()) // a span that records nothing
	}
	attrs := []attribute.KeyValue{attribute.String(attrMachine, wf.MachineID)}
	if p.MAC != "" {
		attrs = append(attrs, attribute.String(attrMAC, p.MAC))
	}
	_, span := t.Start(parent, spanRun, trace.WithAttributes(attrs...))
	return span
}

// startAction starts the span of attempt n of act, a child of ctx's
// agent.run span; without one (no trace), a span that records nothing.
func (t *tracer) startAction(ctx context.Context, act agentproto.Action, n int) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.Start(ctx, truncate(spanActionPrefix+act.Name, maxSpanName), trace.WithAttributes(
		attribute.String(attrActionType, act.Type), attribute.Int(attrAttempt, n)))
}

// failed marks span failed with msg.
func failed(span trace.Span, msg string) {
	span.SetStatus(codes.Error, truncate(msg, maxAttrLen))
}

// progressEvents puts an image write's progress on its span as events:
// one each tenth of the download when its size is known, else one each
// progressEventBytes written; a few per image, not one per block.
type progressEvents struct {
	span  trace.Span
	total int64 // the download's size, or <= 0 if unknown
	last  int64 // the last mark an event was added at
}

// progressEventBytes is how much is written between two progress events
// of an image whose size is unknown.
const progressEventBytes = 1 << 30

// observe adds an event if the write passed a mark.
func (p *progressEvents) observe(downloaded, written int64) {
	var mark int64
	if p.total > 0 {
		mark = min(downloaded, p.total) * 10 / p.total
	} else {
		mark = written / progressEventBytes
	}
	if mark <= p.last {
		return
	}
	p.last = mark
	p.span.AddEvent(eventProgress, trace.WithAttributes(attribute.Int64(attrBytes, written)))
}

// spanSender is the exporter that sends the agent's spans to the
// appliance.
type spanSender struct {
	c   *client
	log *slog.Logger
}

// ExportSpans sends spans until the appliance acknowledges them or ctx
// (the batcher's export timeout, or a flush's) ends. Spans the
// appliance refuses are dropped: a batch is never sent again after a
// final answer, and tracing never holds up the work.
func (e *spanSender) ExportSpans(ctx context.Context, in []sdktrace.ReadOnlySpan) error {
	var batch []json.RawMessage
	var size int
	send := func() {
		if len(batch) == 0 {
			return
		}
		err := e.c.call(ctx, e.log, http.MethodPost, agentproto.PathSpans, agentproto.Spans{Spans: batch}, nil,
			http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge)
		if err != nil {
			e.log.Warn("spans lost", "spans", len(batch), "err", err)
		}
		batch, size = nil, 0
	}
	for _, s := range in {
		raw, err := json.Marshal(newSpanRecord(s))
		if err != nil {
			e.log.Warn("span lost", "name", s.Name(), "err", err)
			continue
		}
		if len(batch) == agentproto.MaxSpans || size+len(raw) > maxBatchBytes {
			send()
		}
		batch, size = append(batch, raw), size+len(raw)
	}
	send()
	return nil
}

// Shutdown has nothing to release.
func (e *spanSender) Shutdown(context.Context) error { return nil }

// spanRecord is a finished span as the appliance keeps it: the JSON of
// package tracing's Span, field for field (a test holds them equal).
type spanRecord struct {
	TraceID string            `json:"trace_id"`
	SpanID  string            `json:"span_id"`
	Parent  string            `json:"parent,omitempty"`
	Name    string            `json:"name"`
	Service string            `json:"service"`
	Node    string            `json:"node,omitempty"`
	Kind    string            `json:"kind,omitempty"`
	Start   time.Time         `json:"start"`
	End     time.Time         `json:"end"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	Events  []spanEvent       `json:"events,omitempty"`
	Error   string            `json:"error,omitempty"`
}

// spanEvent is tracing's SpanEvent.
type spanEvent struct {
	Name  string            `json:"name"`
	Time  time.Time         `json:"time"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// newSpanRecord converts a finished span as tracing.FromSDK does.
func newSpanRecord(s sdktrace.ReadOnlySpan) spanRecord {
	sc := s.SpanContext()
	out := spanRecord{
		TraceID: sc.TraceID().String(),
		SpanID:  sc.SpanID().String(),
		Name:    s.Name(),
		Kind:    kindName(s.SpanKind()),
		Start:   s.StartTime().UTC(),
		End:     s.EndTime().UTC(),
		Attrs:   attrMap(s.Attributes()),
	}
	if p := s.Parent(); p.SpanID().IsValid() {
		out.Parent = p.SpanID().String()
	}
	if res := s.Resource(); res != nil {
		for _, kv := range res.Attributes() {
			switch kv.Key {
			case semconv.ServiceNameKey:
				out.Service = kv.Value.Emit()
			case semconv.ServiceInstanceIDKey:
				out.Node = kv.Value.Emit()
			}
		}
	}
	for _, e := range s.Events() {
		out.Events = append(out.Events, spanEvent{Name: e.Name, Time: e.Time.UTC(), Attrs: attrMap(e.Attributes)})
	}
	if st := s.Status(); st.Code == codes.Error {
		out.Error = st.Description
		if out.Error == "" {
			out.Error = "error"
		}
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func kindName(k trace.SpanKind) string {
	switch k {
	case trace.SpanKindServer:
		return "server"
	case trace.SpanKindClient:
		return "client"
	case trace.SpanKindProducer:
		return "producer"
	case trace.SpanKindConsumer:
		return "consumer"
	}
	return "internal"
}
