package console

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/machinequery"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

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
	// Query is the search as typed, kept in the box whatever happens.
	Query string
	// Error says which term of Query could not be read; no rows then.
	Error   string
	Rows    []machineRow
	Total   int
	States  []string
	Columns []column
}

// column is one the table can show; the browser keeps which are shown.
type column struct{ Key, Label string }

var machineColumns = []column{{"hostname", "Hostname"}, {"state", "State"}, {"power", "Power"},
	{"macs", "MACs"}, {"ips", "IPs"}, {"tags", "Tags"}, {"workflow", "Workflow"}}

// machines serves the machines page: the machines that match the search
// ?q= in machinequery's grammar. A query it cannot read answers 400 with
// the page, the query kept in its box and the term at fault named.
func (s *Server) machines(w http.ResponseWriter, r *http.Request) {
	d := machinesData{Query: r.URL.Query().Get("q"), Columns: machineColumns, States: machineStates()}
	found, total, err := s.search(d.Query)
	var qerr *machinequery.Error
	switch {
	case errors.As(err, &qerr):
		d.Error = "The search was not understood: " + qerr.Error()
		s.render(w, r, http.StatusBadRequest, "machines", "Machines", d)
		return
	case err != nil:
		s.failErr(w, r, err)
		return
	}
	d.Total = total
	for _, m := range found {
		d.Rows = append(d.Rows, rowOf(m))
	}
	s.render(w, r, http.StatusOK, "machines", "Machines", d)
}

// search returns the machines query matches, in id order, and how many
// machines there are. A query Parse refuses is a *machinequery.Error.
func (s *Server) search(query string) (found []*store.Machine, total int, err error) {
	q, err := machinequery.Parse(query)
	if err != nil {
		return nil, 0, err
	}
	err = s.cfg.Store.View(func(tx *store.Tx) error {
		total = store.Count[store.Machine](tx)
		found, err = machinequery.Select(tx, q, s.now())
		return err
	})
	return found, total, err
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
	Query  string
	Rows   []machineRow
}

// bulkPower powers the machines of a search. The machines page posts the
// action with its query q (or the machines chosen in it, id); the answer
// is a page that names every machine the action would reach and asks to
// confirm. The confirmation carries those machines' ids, so exactly the
// machines the page named are powered, whatever changed since.
func (s *Server) bulkPower(w http.ResponseWriter, r *http.Request) {
	a := r.PostFormValue("action")
	action, ok := powerActions[a]
	if !ok {
		s.failErr(w, r, errs.Invalid("action", "%q is not on, off or cycle", a))
		return
	}
	if r.PostFormValue("confirm") == "yes" {
		s.bulkPlace(w, r, action, r.PostForm["id"])
		return
	}
	targets, err := s.bulkTargets(r)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := bulkData{Action: a, Query: r.PostFormValue("q")}
	for _, m := range targets {
		d.Rows = append(d.Rows, rowOf(m))
	}
	s.render(w, r, http.StatusOK, "confirm_bulk", "Confirm", d)
}

// bulkTargets are the machines a bulk action would reach: those chosen
// (id), if any; else those the query q matches. None is an error.
func (s *Server) bulkTargets(r *http.Request) ([]*store.Machine, error) {
	ids := r.PostForm["id"]
	if len(ids) == 0 {
		found, _, err := s.search(r.PostFormValue("q"))
		var qerr *machinequery.Error
		if errors.As(err, &qerr) {
			return nil, errs.Invalid("q", "%v", qerr)
		}
		if err == nil && len(found) == 0 {
			err = errs.Invalid("q", "no machine matches %q: nothing to power", r.PostFormValue("q"))
		}
		return found, err
	}
	var out []*store.Machine
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		for _, id := range ids {
			m, err := store.Get[store.Machine](tx, id)
			if err != nil {
				return errs.Invalid("id", "no machine %q", id)
			}
			out = append(out, m)
		}
		return nil
	})
	return out, err
}

// bulkPlace places the confirmed power order for each machine of ids.
// A machine whose order is refused does not stop the others: the answer
// names each refused machine and why.
func (s *Server) bulkPlace(w http.ResponseWriter, r *http.Request, action string, ids []string) {
	if len(ids) == 0 {
		s.failErr(w, r, errs.Invalid("id", "no machine was chosen"))
		return
	}
	var failed []string
	for _, id := range ids {
		if _, err := s.placeOrder(r, id, action, ""); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", id, api.PublicError(s.log, r, err).Error()))
		}
	}
	if len(failed) > 0 {
		s.fail(w, r, http.StatusConflict, fmt.Sprintf("%d of %d machines were not powered: %s",
			len(failed), len(ids), strings.Join(failed, "; ")))
		return
	}
	http.Redirect(w, r, "/machines", http.StatusSeeOther)
}
