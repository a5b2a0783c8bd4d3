package console

import (
	"context"
	"fmt"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/internal/tracing"
)

// The waterfall of a machine's latest provision: its trace's phases, and
// its spans beneath, drawn as bars on one time axis by the server (the
// page reads the same without JavaScript, and is redrawn with the rest of
// the machine's page when an event comes).

// traceTimeout bounds the gathering of a trace from the site's nodes for
// a page: a node that does not answer by then is named as missing.
const traceTimeout = 2 * time.Second

// waterfall is a trace as the machine page draws it.
type waterfall struct {
	TraceID  string
	Start    time.Time
	Total    time.Duration
	Phases   []bar
	Spans    []bar
	Complete bool
	Missing  []string
	Partial  string
}

// bar is one phase or span: its place on the axis, in percent.
type bar struct {
	Name, Service, Node, Error string
	Took                       time.Duration
	Left, Width                string
}

// machineTrace gathers the trace of the workflow's traceparent tp from
// every node; nil if the console has no traces or the trace is empty.
func (s *Server) machineTrace(ctx context.Context, tp string) *waterfall {
	if s.cfg.Traces == nil || tp == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, traceTimeout)
	defer cancel()
	tr, err := api.GatherTrace(ctx, s.cfg.Traces, tracing.TraceID(tp))
	if err != nil || len(tr.Spans) == 0 {
		return nil
	}
	return newWaterfall(tr)
}

// newWaterfall lays trace tr out on one axis, from its first span's
// start to its last one's end.
func newWaterfall(tr *api.Trace) *waterfall {
	w := &waterfall{TraceID: tr.TraceID, Complete: tr.Completeness.Complete, Missing: tr.Completeness.Missing, Partial: tr.Partial}
	var end time.Time
	for _, sp := range tr.Spans {
		if w.Start.IsZero() || sp.Start.Before(w.Start) {
			w.Start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
	}
	w.Total = end.Sub(w.Start)
	place := func(from, to time.Time) (string, string) {
		if w.Total <= 0 {
			return "0", "100"
		}
		left := float64(from.Sub(w.Start)) / float64(w.Total) * 100
		width := max(float64(to.Sub(from))/float64(w.Total)*100, 0.3)
		return fmt.Sprintf("%.2f", left), fmt.Sprintf("%.2f", min(width, 100-left))
	}
	for _, p := range tr.Phases {
		b := bar{Name: p.Name, Took: p.Duration().Round(time.Millisecond)}
		b.Left, b.Width = place(p.Start, p.End)
		w.Phases = append(w.Phases, b)
	}
	for _, sp := range tr.Spans {
		b := bar{Name: sp.Name, Service: sp.Service, Node: sp.Node, Error: sp.Error, Took: sp.Duration().Round(time.Millisecond)}
		b.Left, b.Width = place(sp.Start, sp.End)
		w.Spans = append(w.Spans, b)
	}
	return w
}
