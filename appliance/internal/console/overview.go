package console

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

type overviewData struct {
	Status    site.Status
	Central   centralView
	Activity  []metricLine
	States    []stateCount
	Flights   []flight
	Artifacts []artifactView
}

// centralView is the site's link to central: the cursors this node's
// store holds, and the link as the leader last recorded it (nil:
// unknown, no leader has reported one).
type centralView struct {
	Link            *store.Link
	AppliedRevision uint64
	// Undelivered counts the events central has not acknowledged.
	Undelivered uint64
}

type stateCount struct {
	State string
	Count int
}

// flight is a workflow in flight: its current step, for how long, and
// whether that step has run past its action's timeout.
type flight struct {
	Workflow, Machine, Step string
	Running                 time.Duration
	Timeout                 time.Duration
	Stalled                 bool
}

// overview serves the site's overview.
func (s *Server) overview(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	d := overviewData{Status: s.cfg.Cluster.Status(), Activity: s.activity()}
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		ss := tx.SyncState()
		link, err := tx.Link()
		if err != nil {
			return err
		}
		d.Central = centralView{Link: link, AppliedRevision: ss.AppliedRevision}
		if last := tx.LastEventSeq(); last > ss.AckedSeq {
			d.Central.Undelivered = last - ss.AckedSeq
		}
		ms, err := store.List[store.Machine](tx)
		if err != nil {
			return err
		}
		d.States = countStates(ms)
		wfs, err := store.List[store.Workflow](tx)
		if err != nil {
			return err
		}
		d.Flights = inFlight(wfs, now)
		d.Artifacts, err = artifactViews(tx)
		return err
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "overview", "Site", d)
}

func countStates(ms []*store.Machine) []stateCount {
	n := map[string]int{}
	for _, m := range ms {
		n[string(m.State)]++
	}
	var out []stateCount
	for st, c := range n {
		out = append(out, stateCount{st, c})
	}
	slices.SortFunc(out, func(a, b stateCount) int { return strings.Compare(a.State, b.State) })
	return out
}

// inFlight lists the workflows not yet finished, longest running first.
func inFlight(wfs []*store.Workflow, now time.Time) []flight {
	var out []flight
	for _, wf := range wfs {
		st := wf.State
		if st == nil || st.Status.Final() {
			continue
		}
		f := flight{Workflow: wf.ID, Machine: wf.MachineID, Step: "waiting to start"}
		if !st.StartedAt.IsZero() {
			f.Running = now.Sub(st.StartedAt)
		}
		for _, a := range st.Actions {
			if a.Status != workflow.Running {
				continue
			}
			f.Step, f.Running = a.Name, now.Sub(a.StartedAt)
			if act, ok := st.Plan.Action(a.Name); ok && act.Timeout > 0 {
				f.Timeout, f.Stalled = act.Timeout, f.Running > act.Timeout
			}
			break
		}
		f.Running = f.Running.Round(time.Second)
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b flight) int { return cmp.Compare(b.Running, a.Running) })
	return out
}

// metricLine is one counter of the DHCP or TFTP server.
type metricLine struct {
	Name, Labels string
	Value        float64
}

// activity reads the DHCP and TFTP servers' counters.
func (s *Server) activity() []metricLine {
	if s.cfg.Metrics == nil {
		return nil
	}
	fams, err := s.cfg.Metrics.Gather()
	if err != nil {
		s.log.Warn("gather metrics", "err", err)
	}
	var out []metricLine
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "outpost_dhcp_") && !strings.HasPrefix(name, "outpost_tftp_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			out = append(out, metricLine{Name: name, Labels: strings.Join(labels, " "), Value: v})
		}
	}
	return out
}
