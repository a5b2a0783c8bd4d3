package phasewatch

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/outposthq/outpost/appliance/internal/machinetrace/tracetest"
	"github.com/outposthq/outpost/internal/testwait"
	"github.com/outposthq/outpost/internal/tracing"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func traceID(n int) string { return fmt.Sprintf("%032x", n+1) }

// fullTrace is the spans of one provision, every phase in it.
func fullTrace(trace string) []tracing.Span { return tracetest.Provision(trace, t0, true) }

// TestMetrics: a provision's phases are observed once, when its trace
// holds the first boot's metadata request.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	trace := fullTrace(traceID(0))
	if m.Observe(traceID(0), trace[:len(trace)-1]) {
		t.Error("a trace without the metadata request was observed")
	}
	if !m.Observe(traceID(0), trace) {
		t.Error("a whole trace was not observed")
	}
	if m.Observe(traceID(0), trace) {
		t.Error("a trace was observed twice")
	}
	if n := testutil.CollectAndCount(reg, "outpost_provision_phase_seconds"); n != len(tracing.PhaseNames) {
		t.Errorf("%d phases observed, want %d", n, len(tracing.PhaseNames))
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { m.Observe(traceID(1), fullTrace(traceID(1))) })
	}
	wg.Wait()
	if got := histCount(t, m, tracing.PhaseImageWrite); got != 2 {
		t.Errorf("image write observed %v times over two provisions, want 2", got)
	}
}

// histCount is how many times a phase was observed.
func histCount(t *testing.T, m *Metrics, phase string) uint64 {
	t.Helper()
	var out dto.Metric
	if err := m.hist.WithLabelValues(phase).(prometheus.Metric).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}

// site is the other nodes' spans: a trace is this node's spans and
// theirs.
type site struct {
	store *tracing.Store
	mu    sync.Mutex
	other map[string][]tracing.Span
}

func (s *site) TraceSpans(_ context.Context, traceID string) ([]tracing.Span, error) {
	own, err := s.store.Trace(traceID)
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(own, s.other[traceID]...), err
}

// TestWatcher: the node observes a provision when it records the first
// boot's metadata request, its other spans gathered from the other
// nodes; spans recorded before it started, and traces that do not reach
// the first boot, are not observed.
func TestWatcher(t *testing.T) {
	st, err := tracing.OpenStore(filepath.Join(t.TempDir(), "spans.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// A provision finished before the node started.
	old := fullTrace(traceID(9))
	if err := st.Add(old); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	s := &site{store: st, other: map[string][]tracing.Span{}}
	w, err := New(Config{Store: st, Traces: s, Metrics: m, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	// The other nodes hold all but the metadata request, which this
	// node records; a second trace stops before the reboot.
	whole := fullTrace(traceID(0))
	cut := fullTrace(traceID(1))
	s.mu.Lock()
	s.other[traceID(0)] = whole[:len(whole)-1]
	s.other[traceID(1)] = cut[:len(cut)-4]
	s.mu.Unlock()
	if err := st.Add([]tracing.Span{cut[len(cut)-1], whole[len(whole)-1]}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the provision observed", 10*time.Second, func() bool { return m.observed(traceID(0)) })
	// Both new spans were read in one step: the second trace was looked
	// at and left, the old one never.
	if m.observed(traceID(1)) || m.observed(traceID(9)) {
		t.Errorf("observed a trace that does not reach the first boot (%v), or one from before the start (%v)",
			m.observed(traceID(1)), m.observed(traceID(9)))
	}
	if got := histCount(t, m, tracing.PhaseImageWrite); got != 1 {
		t.Errorf("image write observed %d times, want 1", got)
	}
}
