// Package phasewatch keeps the Prometheus histogram of the phases of the
// site's provisions (outpost_provision_phase_seconds{phase}), read from
// their traces on the site itself, so that it fills whether or not the
// site is connected to central (central keeps its own, from the spans
// the sites forward).
//
// Every node watches the spans it records itself. When one is the
// installed OS's metadata request (tracing.SpanMetadata), the node
// gathers that trace from every node of the site, and observes its
// phases if the trace reaches the first boot (tracing.Phases), once per
// trace: the node that served the first boot's metadata counts that
// provision, so that summing the nodes' histograms counts each once.
package phasewatch

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/internal/tracing"
)

// Metrics is the histogram of the phases of provisions.
type Metrics struct {
	hist *prometheus.HistogramVec
	mu   sync.Mutex
	seen map[string]bool // trace ids observed
	fifo []string
}

// maxTraces bounds the trace ids Metrics remembers.
const maxTraces = 10000

// NewMetrics registers the phase histogram with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{seen: map[string]bool{}, hist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "outpost_provision_phase_seconds",
		Help:    "Duration of each phase of a provision (tracing.PhaseNames), read from its trace.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 16),
	}, []string{"phase"})}
	reg.MustRegister(m.hist)
	return m
}

func (m *Metrics) observed(traceID string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seen[traceID]
}

// Observe records the phases of trace traceID, whose spans are given,
// if it holds the first boot's metadata request and was not observed
// before; it reports whether it observed them.
func (m *Metrics) Observe(traceID string, spans []tracing.Span) bool {
	phases := tracing.Phases(spans)
	done := false
	for _, p := range phases {
		done = done || p.Name == tracing.PhaseFirstBoot
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !done || m.seen[traceID] {
		return false
	}
	m.seen[traceID] = true
	m.fifo = append(m.fifo, traceID)
	if len(m.fifo) > maxTraces {
		delete(m.seen, m.fifo[0])
		m.fifo = m.fifo[1:]
	}
	for _, p := range phases {
		m.hist.WithLabelValues(p.Name).Observe(p.Duration().Seconds())
	}
	return true
}

// Traces gathers a trace's spans from every node of the site (package
// cluster's Node).
type Traces interface {
	TraceSpans(ctx context.Context, traceID string) ([]tracing.Span, error)
}

// Config configures a Watcher.
type Config struct {
	// Store is the node's span store, which the Watcher reads.
	Store *tracing.Store
	// Traces gathers a trace from every node.
	Traces Traces
	// Metrics is where the phases are observed.
	Metrics *Metrics
	// Interval is how often the Watcher looks for new spans;
	// DefaultInterval if zero.
	Interval time.Duration
	Log      *slog.Logger
}

// DefaultInterval is how often a Watcher looks for new spans by default.
const DefaultInterval = 2 * time.Second

// readBatch is how many spans a Watcher reads at a time.
const readBatch = 1000

// Watcher observes the phases of the provisions whose first boot's
// metadata request this node recorded.
type Watcher struct {
	cfg   Config
	start uint64 // the last span recorded before the Watcher was made
}

// New returns a Watcher of the spans recorded from now on; Run runs it.
// An error is the span store's.
func New(cfg Config) (*Watcher, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	start, err := cfg.Store.Last()
	if err != nil {
		return nil, fmt.Errorf("phasewatch: %w", err)
	}
	return &Watcher{cfg: cfg, start: start}, nil
}

// Run watches the spans until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	seq := w.start
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		seq = w.step(ctx, seq)
	}
}

// step reads the spans numbered after seq, observes the traces whose
// metadata requests are among them, and returns the number of the last
// span read.
func (w *Watcher) step(ctx context.Context, seq uint64) uint64 {
	for {
		spans, last, err := w.cfg.Store.After(seq, readBatch)
		if err != nil {
			w.cfg.Log.Warn("phasewatch: read spans", "err", err)
			return seq
		}
		for _, sp := range spans {
			if sp.Name != tracing.SpanMetadata || w.cfg.Metrics.observed(sp.TraceID) {
				continue
			}
			trace, err := w.cfg.Traces.TraceSpans(ctx, sp.TraceID)
			if err != nil {
				// What the reachable nodes hold may still reach the
				// first boot; otherwise a later request tries again.
				w.cfg.Log.Debug("phasewatch: gather trace", "trace_id", sp.TraceID, "err", err)
			}
			w.cfg.Metrics.Observe(sp.TraceID, trace)
		}
		if seq = last; len(spans) < readBatch {
			return seq
		}
	}
}
