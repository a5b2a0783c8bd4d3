package store

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

// The spans of traces: central's own (its tracing provider sends each
// batch here) and those its sites send, kept in the replicated store so
// that they survive a failover of central (apply_spans.go).

// MaxSpans bounds the spans central keeps: beyond it, the oldest are
// dropped (some thousands of provisions' traces).
const MaxSpans = 500_000

// maxSpansPerCommand is the most spans one command carries: a larger
// AddSpans is split (a Raft entry stays about a MiB).
const maxSpansPerCommand = 1000

// SpansAdded is what AddSpans did: how many spans were new (a span kept
// before, by trace and span id, is not added again), and the provisions
// whose trace first held all of its waterfall (up to the first boot's
// metadata request) with them, each reported once across central.
type SpansAdded struct {
	Added     int
	Completed []ProvisionPhases
}

// ProvisionPhases is the waterfall of one provision's trace.
type ProvisionPhases struct {
	TraceID string
	Phases  []tracing.Phase
}

// AddSpans keeps spans, each validated (a bad one refuses the whole
// call, naming it, and nothing is kept), in as few commands as their
// number allows (one up to 1,000 spans): never a write per span.
func (d *DB) AddSpans(spans []tracing.Span) (*SpansAdded, error) {
	return d.addSpans(spans, MaxSpans)
}

// addSpans is AddSpans keeping at most max spans.
func (d *DB) addSpans(spans []tracing.Span, max int) (*SpansAdded, error) {
	for i := range spans {
		if err := spans[i].Validate(); err != nil {
			return nil, errs.Invalid(fmt.Sprintf("spans[%d]", i), "%s", err.Error())
		}
	}
	out := &SpansAdded{}
	for start := 0; start < len(spans); start += maxSpansPerCommand {
		end := min(start+maxSpansPerCommand, len(spans))
		r, err := d.execResult(cmdAddSpans, &addSpansPayload{Spans: spans[start:end], Max: max})
		if err != nil {
			return out, err
		}
		got := r.(*SpansAdded)
		out.Added += got.Added
		out.Completed = append(out.Completed, got.Completed...)
	}
	return out, nil
}

// Trace returns the spans kept of the trace traceID (32 hex digits), by
// start: none if central holds none of it.
func (d *DB) Trace(traceID string) ([]tracing.Span, error) {
	tid, err := hex.DecodeString(traceID)
	if err != nil || len(tid) != 16 {
		return nil, errs.Invalid("trace_id", "%q is not 32 hex digits", traceID)
	}
	out := []tracing.Span{}
	err = d.view(func(tx *bolt.Tx) error {
		var err error
		out, err = traceIn(tx.Bucket(bucketSpans), tid)
		return err
	})
	return out, err
}

// SpanCount is how many spans central keeps.
func (d *DB) SpanCount() (int, error) {
	var n int
	err := d.view(func(tx *bolt.Tx) error {
		n = int(readU64(tx.Bucket(bucketMeta).Get(keySpanCount)))
		return nil
	})
	return n, err
}

// traceIn reads the spans of trace id tid (16 bytes) from the spans
// bucket, by start.
func traceIn(b *bolt.Bucket, tid []byte) ([]tracing.Span, error) {
	out := []tracing.Span{}
	c := b.Cursor()
	for k, v := c.Seek(tid); k != nil && string(k[:16]) == string(tid); k, v = c.Next() {
		if isMarker(k) {
			continue
		}
		var s tracing.Span
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%w: span %x: %v", ErrCorrupt, k, err)
		}
		out = append(out, s)
	}
	slices.SortStableFunc(out, func(a, b tracing.Span) int { return a.Start.Compare(b.Start) })
	return out, nil
}
