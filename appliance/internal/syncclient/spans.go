package syncclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/syncproto"
)

// Spans to central. Every node of the site keeps the spans it recorded;
// the leader gathers those not forwarded yet from every node (Spans,
// the cluster's internal transport) and sends them on a connection of
// version 2 or later, in spans messages; central's spans_ack of a batch
// moves the forwarding cursor of the node whose spans it ended. Spans
// sent but not acknowledged when a connection ends are sent again on the
// next (central keeps a span once). A node that is down keeps its spans
// until it is back (or loses them with itself).

// SpanSource is what the client needs of the site's nodes' span stores
// (package cluster's Node).
type SpanSource interface {
	// PendingSpans returns, of each node of the site, at most limit of
	// the spans it has not forwarded, numbered after after[node]; with
	// an error naming the nodes it could not reach.
	PendingSpans(ctx context.Context, after map[string]uint64, limit int) ([]site.NodeSpans, error)
	// SpansForwarded moves node's forwarding cursor to seq.
	SpansForwarded(ctx context.Context, node string, seq uint64) error
	// TraceSpans gathers a trace's spans from every node.
	TraceSpans(ctx context.Context, traceID string) ([]tracing.Span, error)
}

// DefaultSpanInterval is how often the leader looks for new spans when
// it has sent them all.
const DefaultSpanInterval = 2 * time.Second

const (
	// maxSpansInFlight bounds the spans messages sent and not yet
	// acknowledged before more nodes' spans are read (one node's read
	// may add a few more).
	maxSpansInFlight = 4
	// ackBuffer holds the acknowledgements the sender has not taken
	// yet: more than can be in flight.
	ackBuffer = 64
	// spanFrameBudget bounds the spans of one message, leaving room for
	// the message around them within syncproto.MaxFrameSize.
	spanFrameBudget = syncproto.MaxFrameSize - 64<<10
)

// spanCursor is where a node's forwarding cursor goes once a batch is
// acknowledged.
type spanCursor struct {
	node string
	last uint64
}

// sendSpans forwards the site's spans on this connection until it ends.
func (s *session) sendSpans(ctx context.Context) error {
	src := s.c.cfg.Spans
	every := s.c.cfg.SpanInterval
	if every <= 0 {
		every = DefaultSpanInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	sent := map[string]uint64{}
	inflight := map[uint64][]spanCursor{}
	var batch uint64
	var lastErr string
	for {
		if len(inflight) < maxSpansInFlight {
			pending, err := src.PendingSpans(ctx, sent, syncproto.MaxSpansPerBatch)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if msg := fmt.Sprint(err); err != nil && msg != lastErr {
				s.log.Warn("spans of some nodes wait: they cannot be read", "err", err)
			}
			lastErr = fmt.Sprint(err)
			for _, ns := range pending {
				if len(inflight) >= maxSpansInFlight {
					break // the rest waits for acknowledgements
				}
				msgs := spanMessages(ns.Spans)
				for i, m := range msgs {
					batch++
					if i == len(msgs)-1 {
						inflight[batch] = []spanCursor{{ns.Node, ns.Last}}
					} else {
						inflight[batch] = nil
					}
					if err := s.write(ctx, &syncproto.Spans{Batch: batch, Spans: m}); err != nil {
						return err
					}
				}
				if len(msgs) == 0 {
					// Nothing of it could be sent: it moves on at once.
					s.forwarded(ctx, []spanCursor{{ns.Node, ns.Last}})
				}
				sent[ns.Node] = ns.Last
			}
			if len(pending) > 0 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case b := <-s.spansAcked:
			cursors, ok := inflight[b]
			if !ok {
				return &localError{syncproto.Errorf(syncproto.CodeBadMessage, "spans_ack %d names no spans message in flight", b)}
			}
			delete(inflight, b)
			s.forwarded(ctx, cursors)
		case <-t.C:
		}
	}
}

// forwarded moves the nodes' cursors; a cursor that cannot be moved now
// (its node is down) leaves its spans to be sent again.
func (s *session) forwarded(ctx context.Context, cursors []spanCursor) {
	for _, c := range cursors {
		if err := s.c.cfg.Spans.SpansForwarded(ctx, c.node, c.last); err != nil && ctx.Err() == nil {
			s.log.Warn("spans forwarded, but the node's cursor did not move: they will be sent again", "node", c.node, "err", err)
		}
	}
}

// spanMessages splits spans into the span lists of messages within the
// protocol's limits. A span central would refuse (larger than
// syncproto.MaxSpanSize, or not valid: tracing.Span.Validate) is left
// out: one bad span must never stop the link.
func spanMessages(spans []tracing.Span) [][]json.RawMessage {
	var out [][]json.RawMessage
	var cur []json.RawMessage
	size := 0
	for i := range spans {
		raw, err := json.Marshal(&spans[i])
		if err != nil || len(raw) > syncproto.MaxSpanSize || spans[i].Validate() != nil {
			continue
		}
		if len(cur) == syncproto.MaxSpansPerBatch || size+len(raw)+1 > spanFrameBudget {
			out, cur, size = append(out, cur), nil, 0
		}
		cur = append(cur, raw)
		size += len(raw) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
