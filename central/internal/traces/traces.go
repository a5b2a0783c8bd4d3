// Package traces is central's side of tracing: it keeps the spans of
// central's own provider and of its sites in the replicated store (a
// batch a command, never a write per span), observes each provision's
// phases once in a Prometheus histogram, and reads a trace back with its
// waterfall and how complete it is.
package traces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/tracing"
)

// Keeper keeps spans in central's store and observes the phases of the
// provisions they complete.
type Keeper struct {
	db      *store.DB
	phases  *prometheus.HistogramVec
	dropped prometheus.Counter
	log     *slog.Logger
}

// New returns a Keeper of db's spans, its histogram registered with reg
// (if not nil).
func New(db *store.DB, reg prometheus.Registerer, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Keeper{db: db, log: log, phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "outpost_provision_phase_seconds",
		Help: "How long each phase of a provision took, from its trace (observed once a provision, when its trace first holds its first boot's metadata request).",
		// Half a second to over an hour.
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 14),
	}, []string{"phase"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_central_spans_dropped_total",
			Help: "Central's own spans not kept: recorded on a node that did not lead (its local routes), or while the cluster had no leader.",
		})}
	if reg != nil {
		reg.MustRegister(k.phases, k.dropped)
	}
	return k
}

// Add keeps spans (each validated: a bad one refuses them all, naming
// it) and observes the phases of each provision they complete.
func (k *Keeper) Add(spans []tracing.Span) error {
	if len(spans) == 0 {
		return nil
	}
	added, err := k.db.AddSpans(spans)
	if added != nil {
		for _, p := range added.Completed {
			for _, ph := range p.Phases {
				k.phases.WithLabelValues(ph.Name).Observe(ph.Duration().Seconds())
			}
		}
	}
	return err
}

// Send is central's own tracing provider's (tracing.Config.Send): its
// spans go through the store like a site's. A follower of a replicated
// central cannot write (its spans are of the routes it serves itself:
// artifacts' bytes): those are counted as dropped, not an error each
// second.
func (k *Keeper) Send(_ context.Context, spans []tracing.Span) error {
	err := k.Add(spans)
	if errors.Is(err, store.ErrNotApplied) {
		k.dropped.Add(float64(len(spans)))
		k.log.Debug("spans dropped: this node does not lead", "spans", len(spans), "err", err)
		return nil
	}
	return err
}

// Trace is a trace as the API answers it: its spans by start, the
// waterfall of its provision and how complete it is.
type Trace struct {
	TraceID      string               `json:"trace_id"`
	Spans        []tracing.Span       `json:"spans"`
	Phases       []tracing.Phase      `json:"phases"`
	Completeness tracing.Completeness `json:"completeness"`
}

// Reader reads traces from central's store (*store.DB).
type Reader interface {
	Trace(traceID string) ([]tracing.Span, error)
}

// Read reads the trace traceID: not found (naming it) if central holds
// none of its spans.
func Read(r Reader, traceID string) (*Trace, error) {
	spans, err := r.Trace(traceID)
	if err != nil {
		return nil, err
	}
	if len(spans) == 0 {
		return nil, errs.NotFound("trace", traceID)
	}
	return Of(traceID, spans), nil
}

// Of is the Trace of spans.
func Of(traceID string, spans []tracing.Span) *Trace {
	phases := tracing.Phases(spans)
	if phases == nil {
		phases = []tracing.Phase{}
	}
	return &Trace{TraceID: traceID, Spans: spans, Phases: phases, Completeness: tracing.Check(spans)}
}

// MachineTrace reads the trace of the last order of machine id of site:
// not found, saying why, if it has no order or its last has no trace.
func MachineTrace(f fleet.Reader, r Reader, site, id string) (*Trace, error) {
	m, err := f.Machine(site, id)
	if err != nil {
		return nil, err
	}
	if m.LastOrder == nil || m.LastOrder.TraceID == "" {
		what := "no order"
		if m.LastOrder != nil {
			what = fmt.Sprintf("its last order, %s, has no trace", m.LastOrder.Key)
		}
		return nil, &errs.Error{Code: errs.CodeNotFound, Message: fmt.Sprintf("machine %s/%s: %s", site, id, what)}
	}
	return Read(r, m.LastOrder.TraceID)
}
