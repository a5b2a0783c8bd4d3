package console

import (
	"net/http"
	"slices"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// machineFilter is the machines page's search, applied on the server.
// Each field is a case-insensitive substring; a leading '!' negates it.
type machineFilter struct {
	MAC, Hostname, State, Text string
}

func filterOf(r *http.Request) machineFilter {
	q := r.URL.Query()
	return machineFilter{MAC: strings.TrimSpace(q.Get("mac")), Hostname: strings.TrimSpace(q.Get("hostname")),
		State: strings.TrimSpace(q.Get("state")), Text: strings.TrimSpace(q.Get("q"))}
}

// match reports whether pattern (with its optional '!') matches any of
// values.
func match(pattern string, values ...string) bool {
	if pattern == "" {
		return true
	}
	neg := strings.HasPrefix(pattern, "!")
	p := strings.ToLower(strings.TrimPrefix(pattern, "!"))
	found := slices.ContainsFunc(values, func(v string) bool { return strings.Contains(strings.ToLower(v), p) })
	return found != neg
}

func (f machineFilter) matches(m *store.Machine) bool {
	var macs, ips []string
	for _, i := range m.Interfaces {
		macs, ips = append(macs, i.MAC), append(ips, i.IP)
	}
	all := append(append(append([]string{m.ID, m.Hostname, string(m.State)}, macs...), ips...), m.Tags...)
	return match(f.MAC, macs...) && match(f.Hostname, m.Hostname) && match(f.State, string(m.State)) &&
		match(f.Text, all...)
}

// machineRow is one row of the machines table.
type machineRow struct {
	ID, Hostname, State, Power, MACs, IPs, Tags, Workflow string
}

func rowOf(m *store.Machine) machineRow {
	var macs, ips []string
	for _, i := range m.Interfaces {
		macs = append(macs, i.MAC)
		if i.IP != "" {
			ips = append(ips, i.IP)
		}
	}
	return machineRow{ID: m.ID, Hostname: m.Hostname, State: string(m.State), Power: m.Power,
		MACs: strings.Join(macs, " "), IPs: strings.Join(ips, " "), Tags: strings.Join(m.Tags, " "), Workflow: m.Workflow}
}

type machinesData struct {
	Filter  machineFilter
	Rows    []machineRow
	Total   int
	States  []string
	Columns []column
}

// column is one the table can show; the browser keeps which are shown.
type column struct{ Key, Label string }

var machineColumns = []column{{"hostname", "Hostname"}, {"state", "State"}, {"power", "Power"},
	{"macs", "MACs"}, {"ips", "IPs"}, {"tags", "Tags"}, {"workflow", "Workflow"}}

// machines serves the machines page.
func (s *Server) machines(w http.ResponseWriter, r *http.Request) {
	d := machinesData{Filter: filterOf(r), Columns: machineColumns, States: machineStates()}
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		ms, err := store.List[store.Machine](tx)
		for _, m := range ms {
			if d.Filter.matches(m) {
				d.Rows = append(d.Rows, rowOf(m))
			}
		}
		d.Total = len(ms)
		return err
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "machines", "Machines", d)
}

func machineStates() []string {
	return []string{string(store.StateDiscovered), string(store.StateReady), string(store.StateProvisioning),
		string(store.StateProvisioned), string(store.StateFailed), string(store.StateDeprovisioning)}
}

// powerActions are the power buttons' values and the orders they place.
var powerActions = map[string]string{
	"on": store.OrderPowerOn, "off": store.OrderPowerOff, "cycle": store.OrderPowerCycle,
}

type bulkData struct {
	Action string
	IDs    []string
}

// bulkPower places a power order for each chosen machine, after a page
// that names them and asks to confirm.
func (s *Server) bulkPower(w http.ResponseWriter, r *http.Request) {
	action, ok := powerActions[r.PostFormValue("action")]
	ids := r.PostForm["id"]
	switch {
	case !ok:
		s.failErr(w, r, errs.Invalid("action", "%q is not on, off or cycle", r.PostFormValue("action")))
		return
	case len(ids) == 0:
		s.failErr(w, r, errs.Invalid("id", "no machine was chosen"))
		return
	case r.PostFormValue("confirm") != "yes":
		s.render(w, r, http.StatusOK, "confirm_bulk", "Confirm", bulkData{Action: r.PostFormValue("action"), IDs: ids})
		return
	}
	for _, id := range ids {
		if _, err := s.placeOrder(r, id, action, ""); err != nil {
			s.failErr(w, r, err)
			return
		}
	}
	http.Redirect(w, r, "/machines", http.StatusSeeOther)
}
