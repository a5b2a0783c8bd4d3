package portal

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/outposthq/outpost/central/fleet"
)

type overviewData struct {
	Summary *fleet.Summary
	Sites   []*fleet.Site
	States  []stateCount
	Flights []flight
}

type stateCount struct {
	State string
	Count int
}

// flight is a machine with an order not yet ended: what it is doing
// now, and since when its order was placed.
type flight struct {
	M    *fleet.Machine
	Step string
	For  time.Duration
}

// overview serves the fleet's overview: the sites with their link and
// what is behind, the machines by state, the orders in flight (longest
// first, as Summary orders them) and the last day's failures by reason.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	sum, err := s.cfg.Fleet.Summary(now)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	sites, err := s.cfg.Fleet.Sites()
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := overviewData{Summary: sum, Sites: sites}
	for _, st := range slices.Sorted(maps.Keys(sum.ByState)) {
		d.States = append(d.States, stateCount{st, sum.ByState[st]})
	}
	for _, m := range sum.InFlight {
		d.Flights = append(d.Flights, flight{M: m, Step: step(m), For: inFlightFor(m, now)})
	}
	s.render(w, r, http.StatusOK, "fleet", "Fleet", d)
}

// step is what an order in flight is doing now: its workflow's running
// action (with its progress), or the order's status.
func step(m *fleet.Machine) string {
	if wf := m.Workflow; wf != nil && wf.Step != "" && (m.LastOrder == nil || m.LastOrder.Status == fleet.OrderRunning) {
		if wf.Progress != "" {
			return wf.Step + " (" + wf.Progress + ")"
		}
		return wf.Step
	}
	if o := m.LastOrder; o != nil {
		if o.Reason != "" {
			return o.Status + ": " + o.Reason
		}
		return o.Status
	}
	return m.State
}

// inFlightFor is how long ago the machine's order was placed.
func inFlightFor(m *fleet.Machine, now time.Time) time.Duration {
	if m.LastOrder == nil || m.LastOrder.Placed.IsZero() {
		return 0
	}
	return now.Sub(m.LastOrder.Placed).Round(time.Second)
}
