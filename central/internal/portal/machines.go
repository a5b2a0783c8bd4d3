package portal

import (
	"net/http"
	"slices"
	"strings"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/internal/errs"
)

// pageSize is how many machines a page of the machines table shows.
const pageSize = 100

// column is one the machines table can show.
type column struct{ Key, Label string }

// machineColumns are the columns one may choose (?cols=, the
// column-<key> boxes); the site and the id are always shown.
var machineColumns = []column{{"hostname", "Hostname"}, {"state", "State"}, {"power", "Power"},
	{"macs", "MACs"}, {"tags", "Tags"}, {"workflow", "Workflow"}, {"order", "Last order"},
	{"order-status", "Order status"}, {"updated", "Updated"}}

// defaultColumns are shown when the request chooses none.
var defaultColumns = []string{"hostname", "state", "power", "workflow", "order-status"}

type machinesData struct {
	// Query is the search as typed, kept in the box whatever happens.
	Query string
	// Error says which term of Query could not be read; no rows then.
	Error   string
	Page    *fleet.Page
	After   string
	Columns []column
	// Shown are the keys of the columns shown.
	Shown  []string
	States []string
	// Actions are the bulk form's; Images the catalogue's names.
	Actions []string
	Images  []string
}

// Show reports whether the column key is shown.
func (d machinesData) Show(key string) bool { return slices.Contains(d.Shown, key) }

// machines serves the machines page: a page of the machines the search
// ?q= matches (the fleet's grammar), with the columns ?cols= chooses. A
// query the fleet cannot read answers 400 with the page, the query kept
// in its box and the term at fault named.
func (s *Server) machines(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := machinesData{Query: q.Get("q"), After: q.Get("after"), Columns: machineColumns, Shown: chosenColumns(q["cols"]),
		States: machineStates, Actions: orderActions, Images: s.imageNames()}
	page, err := s.cfg.Fleet.Machines(d.Query, pageSize, d.After)
	if err != nil {
		if e, ok := errs.AsError(err); ok && e.Code == errs.CodeInvalid {
			d.Error = "The search was not understood: " + e.Message
			s.render(w, r, http.StatusBadRequest, "machines", "Machines", d)
			return
		}
		s.failErr(w, r, err)
		return
	}
	d.Page = page
	s.render(w, r, http.StatusOK, "machines", "Machines", d)
}

// chosenColumns are the known keys of cols (each may hold several,
// comma-separated), or the default ones.
func chosenColumns(cols []string) []string {
	var out []string
	for _, c := range cols {
		for k := range strings.SplitSeq(c, ",") {
			if slices.ContainsFunc(machineColumns, func(col column) bool { return col.Key == k }) && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	if len(out) == 0 {
		return defaultColumns
	}
	return out
}

// machineStates are the states a machine may be in, for the search's
// shortcuts.
var machineStates = []string{"discovered", "ready", "provisioning", "provisioned", "failed", "deprovisioning"}

// machine serves one machine's page: its state, its last order, its
// workflow's progress, the waterfall of its last order's trace, its
// merged timeline (who placed each order) and a
// link to its site's console for the serial line; for an operator, the
// order form, which goes to a preview.
func (s *Server) machine(w http.ResponseWriter, r *http.Request) {
	site, id := r.PathValue("site"), r.PathValue("id")
	m, err := s.cfg.Fleet.Machine(site, id)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	events, err := s.cfg.Fleet.Timeline(site, id, 200)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := machineData{M: m, Events: events, Actions: orderActions, Images: s.imageNames(), Templates: s.templateNames(site),
		Trace: s.waterfallOf(m)}
	if st := s.site(site); st != nil && st.Appliance.Console != "" {
		d.Console = strings.TrimSuffix(st.Appliance.Console, "/") + "/machines/" + id
	}
	s.render(w, r, http.StatusOK, "machine", m.Site+"/"+m.ID, d)
}

type machineData struct {
	M      *fleet.Machine
	Events []fleet.Event
	// Console is the machine's page on its site's console ("" if the
	// site did not report its console's URL).
	Console string
	// Trace is the waterfall of its last order's trace.
	Trace     *waterfall
	Actions   []string
	Images    []string
	Templates []string
}

// site is the fleet's record of a site, nil if unknown.
func (s *Server) site(id string) *fleet.Site {
	sites, err := s.cfg.Fleet.Sites()
	if err != nil {
		s.log.Warn("read sites", "err", err)
		return nil
	}
	i := slices.IndexFunc(sites, func(st *fleet.Site) bool { return st.ID == id })
	if i < 0 {
		return nil
	}
	return sites[i]
}
