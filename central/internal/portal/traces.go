package portal

import (
	"fmt"
	"time"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/tracing"
)

// Traces reads the spans of a trace (*store.DB).
type Traces interface {
	Trace(traceID string) ([]tracing.Span, error)
}

// waterfall is a provision's trace as the machine page draws it: each
// phase and each span a bar placed on the trace's time line (Left and
// Width in percent of it), with its duration in words.
type waterfall struct {
	TraceID string
	// Note says why there is no waterfall ("" when there is one).
	Note   string
	Total  string
	Phases []bar
	Spans  []bar
	// Complete and Missing: whether every phase is there, and which are
	// not (yet).
	Complete bool
	Missing  []string
	Services []string
}

// bar is one phase or span of a waterfall.
type bar struct {
	Name, Service string
	// At is its start after the trace's, Took its duration, in words.
	At, Took    string
	Left, Width float64
	Error       string
}

// waterfallOf reads the trace of m's last order and lays it out; a
// machine without one gets a note saying why.
func (s *Server) waterfallOf(m *fleet.Machine) *waterfall {
	o := m.LastOrder
	switch {
	case s.cfg.Traces == nil:
		return &waterfall{Note: "This central keeps no traces."}
	case o == nil:
		return &waterfall{Note: "No order yet."}
	case o.TraceID == "":
		return &waterfall{Note: fmt.Sprintf("Order %s has no trace.", o.Key)}
	}
	spans, err := s.cfg.Traces.Trace(o.TraceID)
	if err != nil {
		s.log.Warn("read trace", "trace_id", o.TraceID, "err", err)
		return &waterfall{TraceID: o.TraceID, Note: "The trace could not be read; see central's log."}
	}
	if len(spans) == 0 {
		return &waterfall{TraceID: o.TraceID, Note: "No spans of this order's trace have arrived yet."}
	}
	return layOut(o.TraceID, spans)
}

// layOut places the phases and spans of a trace on its time line, from
// its first start to its last end.
func layOut(traceID string, spans []tracing.Span) *waterfall {
	start, end := spans[0].Start, spans[0].End
	for _, sp := range spans {
		if sp.Start.Before(start) {
			start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
	}
	total := end.Sub(start)
	place := func(a, b time.Time) (left, width float64) {
		if total <= 0 {
			return 0, 100
		}
		left = 100 * float64(a.Sub(start)) / float64(total)
		width = max(100*float64(b.Sub(a))/float64(total), 0.5) // a sliver stays visible
		return round1(left), round1(min(width, 100-left))
	}
	c := tracing.Check(spans)
	w := &waterfall{TraceID: traceID, Total: took(total), Complete: c.Complete, Missing: c.Missing, Services: c.Services}
	for _, p := range tracing.Phases(spans) {
		l, wd := place(p.Start, p.End)
		w.Phases = append(w.Phases, bar{Name: p.Name, At: took(p.Start.Sub(start)), Took: took(p.Duration()), Left: l, Width: wd})
	}
	for _, sp := range spans {
		l, wd := place(sp.Start, sp.End)
		w.Spans = append(w.Spans, bar{Name: sp.Name, Service: sp.Service, At: took(sp.Start.Sub(start)), Took: took(sp.Duration()),
			Left: l, Width: wd, Error: sp.Error})
	}
	return w
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

// took is a duration in words a person reads: "850ms", "4.2s", "3m05s",
// "1h02m".
func took(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}
