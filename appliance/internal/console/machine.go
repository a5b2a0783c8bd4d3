package console

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
)

type machineData struct {
	Machine  *store.Machine
	Leases   map[string]*store.Lease // by MAC
	Workflow *store.Workflow
	Stages   [][]stepView
	Events   []*store.Event
	Image    string
	// Trace is the waterfall of the workflow's trace, if it has one.
	Trace *waterfall
}

// stepView is one action of the workflow's graph.
type stepView struct {
	Name, Type, Status, Message string
	Needs                       []string
	Attempt, Tries              int
	Started, Finished           time.Time
	Took                        time.Duration
}

// machine serves a machine's page.
func (s *Server) machine(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	d := machineData{Leases: map[string]*store.Lease{}}
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		m, err := store.Get[store.Machine](tx, id)
		if err != nil {
			return err
		}
		d.Machine = m.View() // what any reader may see: no password, sealed or not
		for _, i := range m.Interfaces {
			if l, err := tx.LeaseByMAC(i.Subnet, i.MAC); err == nil {
				d.Leases[i.MAC] = l
			}
		}
		if m.Workflow != "" {
			if wf, err := store.Get[store.Workflow](tx, m.Workflow); err == nil {
				d.Workflow, d.Stages, d.Image = wf, stages(wf), wf.Values["image"]
			}
		}
		d.Events, err = machineEvents(tx, id, 200)
		return err
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	if d.Workflow != nil {
		d.Trace = s.machineTrace(r.Context(), d.Workflow.Traceparent)
	}
	s.render(w, r, http.StatusOK, "machine", "Machine "+id, d)
}

// stages lays a workflow's graph out in columns: each action in the
// column after the last of the actions it needs.
func stages(wf *store.Workflow) [][]stepView {
	if wf.State == nil || wf.State.Plan == nil {
		return nil
	}
	level := map[string]int{}
	var out [][]stepView
	for _, a := range wf.State.Plan.Actions() { // in an order that puts needs first
		l := 0
		for _, n := range a.Needs {
			l = max(l, level[n]+1)
		}
		level[a.Name] = l
		for len(out) <= l {
			out = append(out, nil)
		}
		out[l] = append(out[l], stepOf(a, wf.State))
	}
	return out
}

func stepOf(a workflow.Action, st *workflow.State) stepView {
	v := stepView{Name: a.Name, Type: a.Type, Needs: a.Needs, Tries: a.Retries + 1, Status: string(workflow.Pending)}
	i := slices.IndexFunc(st.Actions, func(as workflow.ActionState) bool { return as.Name == a.Name })
	if i < 0 {
		return v
	}
	as := st.Actions[i]
	v.Status, v.Message, v.Attempt, v.Started, v.Finished = string(as.Status), as.Message, as.Attempt, as.StartedAt, as.FinishedAt
	if !as.StartedAt.IsZero() && !as.FinishedAt.IsZero() {
		v.Took = as.FinishedAt.Sub(as.StartedAt).Round(time.Millisecond)
	}
	return v
}

// machineEvents returns the newest limit events of machine id, newest
// first, among the newest eventsScan events of the log.
func machineEvents(tx *store.Tx, id string, limit int) ([]*store.Event, error) {
	var out []*store.Event
	scanned := 0
	err := tx.EventsBefore(0, 0, func(e *store.Event) bool {
		scanned++
		if e.MachineID == id {
			out = append(out, e)
		}
		return len(out) < limit && scanned < eventsScan
	})
	return out, err
}

// power places a power order for the machine, after a confirmation.
func (s *Server) power(w http.ResponseWriter, r *http.Request) {
	a := r.PostFormValue("action")
	action, ok := powerActions[a]
	if !ok {
		s.failErr(w, r, errs.Invalid("action", "%q is not on, off or cycle", a))
		return
	}
	s.confirmOrder(w, r, action, "power "+a, "")
}

// reprovision installs the machine again: with the image the form names,
// or its last workflow's.
func (s *Server) reprovision(w http.ResponseWriter, r *http.Request) {
	s.confirmOrder(w, r, store.OrderProvision, "reprovision", strings.TrimSpace(r.PostFormValue("image")))
}

// deprovision wipes the machine and powers it off.
func (s *Server) deprovision(w http.ResponseWriter, r *http.Request) {
	s.confirmOrder(w, r, store.OrderDeprovision, "deprovision", "")
}

// bootPXE sets the machine's next boot to the network through its BMC,
// after a confirmation naming the machine: a BMC job, as the API's POST
// /v1/machines/{id}/boot-pxe queues, recorded as the session's token's.
func (s *Server) bootPXE(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "confirm", "Confirm", confirmData{Machine: id, Verb: "set the next boot to PXE of",
			Path: r.URL.Path})
		return
	}
	if _, err := s.cfg.Site.BootPXE(r.Context(), id, false, false); err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, "/machines/"+id, http.StatusSeeOther)
}

type confirmData struct {
	Machine, Verb, Path, Action, Image string
}

// confirmOrder asks to confirm a machine's order on a page naming it,
// then places it.
func (s *Server) confirmOrder(w http.ResponseWriter, r *http.Request, action, verb, image string) {
	id := r.PathValue("id")
	if r.PostFormValue("confirm") != "yes" {
		s.render(w, r, http.StatusOK, "confirm", "Confirm", confirmData{Machine: id, Verb: verb,
			Path: r.URL.Path, Action: r.PostFormValue("action"), Image: image})
		return
	}
	if _, err := s.placeOrder(r, id, action, image); err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, "/machines/"+id, http.StatusSeeOther)
}

// placeOrder places an order through the proposer, as the API's PUT
// /v1/orders does; its events are the session's token's.
func (s *Server) placeOrder(r *http.Request, machineID, action, image string) (*store.Order, error) {
	if err := s.cfg.Store.View(func(tx *store.Tx) error {
		_, err := store.Get[store.Machine](tx, machineID)
		return err
	}); err != nil {
		return nil, err
	}
	o := &store.Order{ID: orderID(action), Action: action, MachineID: machineID, Image: image}
	return s.cfg.Site.PlaceOrder(r.Context(), o)
}

func orderID(action string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return "console-" + strings.ReplaceAll(action, "_", "-") + "-" + hex.EncodeToString(b)
}
