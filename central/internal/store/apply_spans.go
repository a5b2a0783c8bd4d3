package store

import (
	"encoding/hex"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

// The spans bucket keys each span by its trace id and span id (16 and 8
// bytes), so a trace is one range and a span sent twice is kept once;
// bucket span_order numbers them as they were added, so the oldest are
// dropped first. A key whose span id is zero (no span has it) marks a
// trace whose provision's phases were observed (SpansAdded.Completed).
var (
	keySpanSeq   = []byte("span_seq")
	keySpanCount = []byte("span_count")
)

// applyAddSpans keeps the spans not kept yet, drops the oldest beyond
// the bound, and returns a *SpansAdded.
func applyAddSpans(tx *txn, p *addSpansPayload) (any, error) {
	keys := make([][]byte, len(p.Spans))
	for i := range p.Spans {
		k, err := spanKey(p.Spans[i].TraceID, p.Spans[i].SpanID)
		if err != nil {
			return nil, errs.Invalid(fmt.Sprintf("spans[%d]", i), "%s", err.Error())
		}
		keys[i] = k
	}
	b, order, meta := tx.Bucket(bucketSpans), tx.Bucket(bucketSpanOrder), tx.Bucket(bucketMeta)
	seq, count := readU64(meta.Get(keySpanSeq)), readU64(meta.Get(keySpanCount))
	out := &SpansAdded{}
	var traces [][]byte
	var machines []spansOf
	for i, k := range keys {
		if b.Get(k) != nil {
			continue
		}
		machines = countSpan(machines, &p.Spans[i])
		if err := put(b, k, &p.Spans[i]); err != nil {
			return nil, err
		}
		seq++
		if err := order.Put(u64(seq), k); err != nil {
			return nil, err
		}
		count++
		out.Added++
		if !slices.ContainsFunc(traces, func(t []byte) bool { return string(t) == string(k[:16]) }) {
			traces = append(traces, k[:16])
		}
	}
	if out.Added == 0 {
		return out, nil
	}
	for max := uint64(max(p.Max, 1)); count > max; count-- {
		if err := dropOldestSpan(b, order); err != nil {
			return nil, err
		}
	}
	for _, tid := range traces {
		done, err := observePhases(b, tid)
		if err != nil {
			return nil, err
		}
		if done != nil {
			out.Completed = append(out.Completed, *done)
		}
	}
	if err := deriveSpans(tx, machines); err != nil {
		return nil, err
	}
	if err := meta.Put(keySpanSeq, u64(seq)); err != nil {
		return nil, err
	}
	return out, meta.Put(keySpanCount, u64(count))
}

// spansOf counts the new spans of one trace that name one machine.
type spansOf struct {
	site, machine, trace string
	n                    int
}

// countSpan counts s for the machine it names: its outpost.site and
// outpost.machine attributes, or an installer's node (its machine).
func countSpan(c []spansOf, s *tracing.Span) []spansOf {
	site, machine := s.Attrs[tracing.AttrSite], s.Attrs[tracing.AttrMachine]
	if machine == "" && s.Service == "outpost-agent" {
		machine = s.Node
	}
	if site == "" || machine == "" {
		return c
	}
	for i := range c {
		if c[i].site == site && c[i].machine == machine && c[i].trace == s.TraceID {
			c[i].n++
			return c
		}
	}
	return append(c, spansOf{site: site, machine: machine, trace: s.TraceID, n: 1})
}

// deriveSpans counts the new spans of each machine's last order's trace
// on its record (fleet.SpansKept): the record changes, so the pages that
// follow the fleet redraw its waterfall.
func deriveSpans(tx *txn, counts []spansOf) error {
	for _, c := range counts {
		sites := tx.Bucket(bucketFleet).Bucket([]byte(c.site))
		if sites == nil {
			continue
		}
		m, err := machineRecord(sites, c.machine)
		if err != nil {
			return err
		}
		if m = fleet.SpansKept(m, c.trace, c.n); m != nil {
			if err := putRecord(tx, sites, c.site, c.machine, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropOldestSpan drops the span added first, and its trace's marker if
// it was the trace's last span.
func dropOldestSpan(b, order *bolt.Bucket) error {
	c := order.Cursor()
	k, v := c.First()
	if k == nil {
		return nil
	}
	key := slices.Clone(v)
	if err := c.Delete(); err != nil {
		return err
	}
	if err := b.Delete(key); err != nil {
		return err
	}
	tc := b.Cursor()
	first, _ := tc.Seek(key[:16])
	if first == nil || string(first[:16]) != string(key[:16]) || !isMarker(first) {
		return nil
	}
	if next, _ := tc.Next(); next != nil && string(next[:16]) == string(key[:16]) {
		return nil
	}
	return b.Delete(first)
}

// observePhases reads the trace tid, and if it holds a provision's whole
// waterfall (its first boot's metadata request) and was not observed
// before, marks it observed and returns its phases.
func observePhases(b *bolt.Bucket, tid []byte) (*ProvisionPhases, error) {
	marker := append(slices.Clone(tid), make([]byte, 8)...)
	if b.Get(marker) != nil {
		return nil, nil
	}
	spans, err := traceIn(b, tid)
	if err != nil || !slices.ContainsFunc(spans, func(s tracing.Span) bool { return s.Name == tracing.SpanMetadata }) {
		return nil, err
	}
	phases := tracing.Phases(spans)
	if !slices.ContainsFunc(phases, func(p tracing.Phase) bool { return p.Name == tracing.PhaseFirstBoot }) {
		return nil, nil
	}
	if err := b.Put(marker, []byte("{}")); err != nil {
		return nil, err
	}
	return &ProvisionPhases{TraceID: hex.EncodeToString(tid), Phases: phases}, nil
}

// spanKey is a span's key: its trace id and span id, from hex.
func spanKey(traceID, spanID string) ([]byte, error) {
	t, err := hex.DecodeString(traceID)
	if err != nil || len(t) != 16 {
		return nil, fmt.Errorf("trace id %q is not 32 hex digits", traceID)
	}
	s, err := hex.DecodeString(spanID)
	if err != nil || len(s) != 8 {
		return nil, fmt.Errorf("span id %q is not 16 hex digits", spanID)
	}
	return append(t, s...), nil
}

// isMarker reports whether a key of the spans bucket is a trace's
// marker (span id zero).
func isMarker(k []byte) bool {
	return len(k) == 24 && string(k[16:]) == "\x00\x00\x00\x00\x00\x00\x00\x00"
}
