package tracing

import (
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Span names of a provision, which Phases reads. A service may record
// other spans too; they are shown in a trace but are in no phase.
const (
	// SpanOrderPlace is central's placing of an order (the trace's root
	// for an order placed at central).
	SpanOrderPlace = "order.place"
	// SpanOrderApply is the site's applying of a delivered order (its
	// workflow created, its BMC jobs queued).
	SpanOrderApply = "order.apply"
	// SpanBMCPrefix starts the name of each BMC job's span
	// ("bmc.power_cycle", "bmc.boot_pxe").
	SpanBMCPrefix = "bmc."
	// SpanDHCP is one DHCP exchange of the machine's MAC (a DISCOVER to
	// its ACK, or a REQUEST to its ACK).
	SpanDHCP = "dhcp.exchange"
	// SpanTFTP is one TFTP read of a boot file.
	SpanTFTP = "tftp.read"
	// SpanBootHTTP is one HTTP fetch of a boot artifact or the iPXE
	// script from the boot server; attribute AttrBootFile says which
	// ("script", "kernel", "initrd").
	SpanBootHTTP = "boot.fetch"
	// SpanAgent is the installer's agent running the workflow, from its
	// start to its last action's end.
	SpanAgent = "agent.run"
	// SpanActionPrefix starts the name of each action's span
	// ("action.wipe"); attribute AttrActionType gives its type.
	SpanActionPrefix = "action."
	// SpanMetadata is one metadata request of the machine.
	SpanMetadata = "metadata.get"
)

// Attribute keys the spans of a provision carry.
const (
	AttrOrder      = "outpost.order"
	AttrSite       = "outpost.site"
	AttrMachine    = "outpost.machine"
	AttrMAC        = "outpost.mac"
	AttrImage      = "outpost.image"
	AttrHardware   = "outpost.hardware_class"
	AttrBootFile   = "outpost.boot_file"
	AttrActionType = "outpost.action_type"
	// AttrBytes is an image write's progress, on its span events
	// ("progress").
	AttrBytes = "outpost.bytes"
)

// Span is a finished span as Outpost keeps it, ships it to central and
// shows it: the OpenTelemetry span reduced to strings, so that a site's
// spans are a plain JSON record on every side.
type Span struct {
	TraceID string `json:"trace_id"` // 32 hex digits
	SpanID  string `json:"span_id"`  // 16 hex digits
	Parent  string `json:"parent,omitempty"`
	Name    string `json:"name"`
	// Service is the program that recorded it (centrald, applianced,
	// outpost-agent), Node the node's name within its site or cluster.
	Service string            `json:"service"`
	Node    string            `json:"node,omitempty"`
	Kind    string            `json:"kind,omitempty"`
	Start   time.Time         `json:"start"`
	End     time.Time         `json:"end"`
	Attrs   map[string]string `json:"attrs,omitempty"`
	Events  []SpanEvent       `json:"events,omitempty"`
	// Error is the span's error status's description, or "error" if it
	// gave none; empty when the span did not fail.
	Error string `json:"error,omitempty"`
}

// SpanEvent is an event of a span (an image write's progress).
type SpanEvent struct {
	Name  string            `json:"name"`
	Time  time.Time         `json:"time"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Duration is how long the span took.
func (s *Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// FromSDK converts a finished OpenTelemetry span.
func FromSDK(s sdktrace.ReadOnlySpan) Span {
	sc := s.SpanContext()
	out := Span{
		TraceID: sc.TraceID().String(),
		SpanID:  sc.SpanID().String(),
		Name:    clip(s.Name(), MaxNameLen),
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
		out.Events = append(out.Events, SpanEvent{Name: clip(e.Name, MaxNameLen), Time: e.Time.UTC(), Attrs: attrMap(e.Attributes)})
	}
	if st := s.Status(); st.Code == codes.Error {
		out.Error = st.Description
		if out.Error == "" {
			out.Error = "error"
		}
	}
	return out
}

// toSDK makes an OpenTelemetry span of a record (for OTLP), its
// attributes all strings, its resource the service and node it names.
func toSDK(s *Span) sdktrace.ReadOnlySpan {
	tid, _ := trace.TraceIDFromHex(s.TraceID)
	sid, _ := trace.SpanIDFromHex(s.SpanID)
	stub := tracetest.SpanStub{
		Name:        s.Name,
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}),
		SpanKind:    kindOf(s.Kind),
		StartTime:   s.Start,
		EndTime:     s.End,
		Attributes:  attrList(s.Attrs),
	}
	if s.Parent != "" {
		pid, _ := trace.SpanIDFromHex(s.Parent)
		stub.Parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: pid, TraceFlags: trace.FlagsSampled, Remote: true})
	}
	for _, e := range s.Events {
		stub.Events = append(stub.Events, sdktrace.Event{Name: e.Name, Time: e.Time, Attributes: attrList(e.Attrs)})
	}
	if s.Error != "" {
		stub.Status = sdktrace.Status{Code: codes.Error, Description: s.Error}
	}
	res := []attribute.KeyValue{semconv.ServiceName(s.Service)}
	if s.Node != "" {
		res = append(res, semconv.ServiceInstanceID(s.Node))
	}
	stub.Resource = resource.NewWithAttributes(semconv.SchemaURL, res...)
	return stub.Snapshot()
}

func attrList(m map[string]string) []attribute.KeyValue {
	out := make([]attribute.KeyValue, 0, len(m))
	for k, v := range m {
		out = append(out, attribute.String(k, v))
	}
	return out
}

func kindOf(name string) trace.SpanKind {
	switch name {
	case "server":
		return trace.SpanKindServer
	case "client":
		return trace.SpanKindClient
	case "producer":
		return trace.SpanKindProducer
	case "consumer":
		return trace.SpanKindConsumer
	}
	return trace.SpanKindInternal
}

// attrMap is a span's attributes as strings, each value clipped to
// MaxAttrLen bytes (at a character's boundary) and keys longer than
// MaxNameLen left out, so that a span recorded here always passes
// Validate where it is sent (the provider's span limits bound the
// counts).
func attrMap(kvs []attribute.KeyValue) map[string]string {
	if len(kvs) == 0 {
		return nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		if len(kv.Key) <= MaxNameLen {
			m[string(kv.Key)] = clip(kv.Value.Emit(), MaxAttrLen)
		}
	}
	return m
}

// clip shortens s to at most n bytes, at a character's boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
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
