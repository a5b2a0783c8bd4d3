package dhcp

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/internal/tracing"
)

// Tracing. A DHCP exchange of a machine whose latest workflow has a
// traceparent (package machinetrace) is a span, tracing.SpanDHCP, child
// of that traceparent: a DISCOVER to the ACK (or NAK) of the REQUEST
// that followed its OFFER (same MAC and transaction id), or a REQUEST
// or INFORM to its answer. A DISCOVER whose REQUEST never comes records
// nothing. Other machines' packets cost a map lookup (the machine is
// read anyway) and record nothing.

// tracer is the global provider's tracer, asked for each time: a
// program (or test) may set its provider after this package is loaded.
func tracer() trace.Tracer {
	return otel.Tracer("github.com/outposthq/outpost/appliance/internal/dhcp")
}

// Attributes of a DHCP exchange's span, besides tracing.AttrMAC and
// tracing.AttrMachine.
const (
	attrIP       = "outpost.ip"            // the address given (yiaddr)
	attrMessages = "outpost.dhcp.messages" // "DISCOVER OFFER REQUEST ACK"
	attrXID      = "outpost.dhcp.xid"
	attrBootFile = "outpost.dhcp.boot_file" // what the reply boots, if anything
)

// exchangeKey names an exchange: the client's MAC and transaction id.
type exchangeKey struct {
	mac string
	xid dhcpv4.TransactionID
}

// exchanges holds the start of traced exchanges whose DISCOVER was
// answered, until their REQUEST comes (or the offer's hold passes).
type exchanges struct {
	mu      sync.Mutex
	started map[exchangeKey]time.Time
	pruned  time.Time // when exchanges past the hold were last dropped
}

// begin records an exchange's start; a retransmitted DISCOVER keeps the
// first. Exchanges older than hold are forgotten.
func (e *exchanges) begin(k exchangeKey, at time.Time, hold time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started == nil {
		e.started = map[exchangeKey]time.Time{}
	}
	// Exchanges whose REQUEST never came are dropped once per hold, not
	// on every DISCOVER: the scan is of every exchange under way.
	if at.Sub(e.pruned) > hold {
		for old, t := range e.started {
			if at.Sub(t) > hold {
				delete(e.started, old)
			}
		}
		e.pruned = at
	}
	if t, ok := e.started[k]; !ok || at.Sub(t) > hold {
		e.started[k] = at
	}
}

// take returns and forgets an exchange's start.
func (e *exchanges) take(k exchangeKey) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.started[k]
	delete(e.started, k)
	return t, ok
}

// traceExchange starts the span of r's exchange if r's machine is
// traced, returning the context to handle r in and the function that
// ends the span with the reply (nil if none was sent).
func (s *Server) traceExchange(ctx context.Context, r *request) (context.Context, func(reply *dhcpv4.DHCPv4)) {
	if !r.trace.Traced() {
		return ctx, func(*dhcpv4.DHCPv4) {}
	}
	now := time.Now()
	key := exchangeKey{r.mac, r.msg.TransactionID}
	typ := r.msg.MessageType()
	start, msgs := now, []string{typ.String()}
	switch {
	case typ == dhcpv4.MessageTypeDiscover && !s.cfg.Proxy:
		// The exchange goes on with the REQUEST.
		return ctx, func(reply *dhcpv4.DHCPv4) {
			if reply != nil {
				s.exchanges.begin(key, now, s.cfg.OfferHold)
			}
		}
	case typ == dhcpv4.MessageTypeRequest:
		if t, ok := s.exchanges.take(key); ok {
			start, msgs = t, []string{"DISCOVER", "OFFER", "REQUEST"}
		}
	case typ == dhcpv4.MessageTypeInform || s.cfg.Proxy:
	default:
		return ctx, func(*dhcpv4.DHCPv4) {}
	}
	ctx, span := tracer().Start(tracing.WithRemoteParent(ctx, r.trace.Traceparent), tracing.SpanDHCP,
		trace.WithTimestamp(start), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String(tracing.AttrMAC, r.mac), attribute.String(tracing.AttrMachine, r.trace.Machine),
			attribute.String(attrXID, r.msg.TransactionID.String())))
	return ctx, func(reply *dhcpv4.DHCPv4) {
		if reply != nil {
			msgs = append(msgs, reply.MessageType().String())
			if ip := reply.YourIPAddr; ip != nil && !ip.IsUnspecified() {
				span.SetAttributes(attribute.String(attrIP, ip.String()))
			}
			if f := reply.BootFileName; f != "" {
				span.SetAttributes(attribute.String(attrBootFile, f))
			}
			if reply.MessageType() == dhcpv4.MessageTypeNak {
				span.SetStatus(codes.Error, "NAK: "+reply.Message())
			}
		}
		span.SetAttributes(attribute.String(attrMessages, strings.Join(msgs, " ")))
		span.End()
	}
}
