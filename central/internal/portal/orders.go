package portal

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/webui"
)

// orderActions are the order forms' actions: provision, deprovision and
// the three power orders, as people say them.
var orderActions = []string{"provision", "deprovision", "power-on", "power-off", "power-cycle"}

// maxResults bounds the machines a batch's page lists.
const maxResults = 10000

// requestOf reads an order form: action, then the machines (target,
// "<site>/<id>", repeated; else the search q) and the parameters.
func requestOf(r *http.Request) (*orders.Request, error) {
	req := &orders.Request{Query: strings.TrimSpace(r.PostFormValue("q"))}
	switch a := r.PostFormValue("action"); a {
	case orders.ActionProvision, orders.ActionDeprovision:
		req.Action = a
	case "power-on", "power-off", "power-cycle":
		req.Action, req.Params.Power = orders.ActionPower, strings.TrimPrefix(a, "power-")
	default:
		return nil, errs.Invalid("action", "%q is not one of %s", a, strings.Join(orderActions, ", "))
	}
	for _, t := range r.PostForm["target"] {
		site, id, ok := strings.Cut(t, "/")
		if !ok || site == "" || id == "" {
			return nil, errs.Invalid("target", "%q is not <site>/<machine>", t)
		}
		req.Targets = append(req.Targets, orders.TargetRef{Site: site, Machine: id})
	}
	if len(req.Targets) > 0 {
		req.Query = ""
	}
	if req.Action == orders.ActionProvision {
		p := &req.Params
		p.Image, p.Template = strings.TrimSpace(r.PostFormValue("image")), strings.TrimSpace(r.PostFormValue("template"))
		p.Hostname, p.UserData = strings.TrimSpace(r.PostFormValue("hostname")), r.PostFormValue("user_data")
		for k := range strings.Lines(r.PostFormValue("ssh_keys")) {
			if k = strings.TrimSpace(k); k != "" {
				p.SSHKeys = append(p.SSHKeys, k)
			}
		}
	}
	return req, nil
}

// orderForm reads the request's order form; when central places no
// orders or the form is wrong it answers the request itself, and false.
func (s *Server) orderForm(w http.ResponseWriter, r *http.Request) (*orders.Request, bool) {
	if s.cfg.Orders == nil {
		s.fail(w, r, http.StatusServiceUnavailable, "this central places no orders")
		return nil, false
	}
	req, err := requestOf(r)
	if err != nil {
		s.failErr(w, r, err)
		return nil, false
	}
	return req, true
}

// actionOf is the form's action for req: requestOf's inverse.
func actionOf(req *orders.Request) string {
	if req.Action == orders.ActionPower {
		return "power-" + req.Params.Power
	}
	return req.Action
}

type previewData struct {
	Action   string
	Req      *orders.Request
	Preview  *orders.Preview
	Placing  int
	Offline  int
	SSHKeys  string
	Back     string
	Question string
}

// preview answers an order form with what the order would do, machine by
// machine, and asks to confirm. The confirmation carries the machines the
// preview will place (those without a problem), so exactly those are
// ordered, whatever the search would match by then.
func (s *Server) preview(w http.ResponseWriter, r *http.Request) {
	req, ok := s.orderForm(w, r)
	if !ok {
		return
	}
	p, err := s.cfg.Orders.Preview(r.Context(), req)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	d := previewData{Action: actionOf(req), Req: req, Preview: p, SSHKeys: strings.Join(req.Params.SSHKeys, "\n"),
		Back: "/machines?q=" + url.QueryEscape(req.Query)}
	for _, it := range p.Items {
		if it.Problem == "" {
			d.Placing++
			if it.Offline {
				d.Offline++
			}
		}
	}
	if len(req.Targets) == 1 {
		d.Back = "/machines/" + req.Targets[0].Site + "/" + req.Targets[0].Machine
	}
	d.Question = fmt.Sprintf("%s %d %s?", actionWords[d.Action], d.Placing, plural(d.Placing, "machine", "machines"))
	s.render(w, r, http.StatusOK, "preview", "Confirm", d)
}

// actionWords says an action as the confirmation asks it.
var actionWords = map[string]string{"provision": "Provision", "deprovision": "Deprovision",
	"power-on": "Power on", "power-off": "Power off", "power-cycle": "Power-cycle"}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// place places a confirmed preview's orders and goes to their progress.
func (s *Server) place(w http.ResponseWriter, r *http.Request) {
	req, ok := s.orderForm(w, r)
	if !ok {
		return
	}
	if len(req.Targets) == 0 {
		s.failErr(w, r, errs.Invalid("target", "a confirmation names its machines: preview the order first"))
		return
	}
	res, err := s.cfg.Orders.Place(r.Context(), webui.SessionOf(r.Context()).Caller.Name, r.RemoteAddr, req)
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.log.Info("portal orders placed", "batch", res.Batch, "placed", len(res.Placed), "refused", len(res.Refused),
		"by", webui.SessionOf(r.Context()).Caller.Name)
	next := "/orders/" + url.PathEscape(res.Batch)
	if res.Batch == "" && len(res.Placed) == 1 {
		next = "/machines/" + res.Placed[0].Site + "/" + res.Placed[0].Machine
	}
	if len(res.Refused) > 0 {
		next += "?refused=" + strconv.Itoa(len(res.Refused))
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// batchID is a batch's key prefix: what order:<batch>-* may safely hold.
var batchID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.]*(-[A-Za-z0-9_.]+)*$`)

type batchData struct {
	Batch    string
	Machines []*fleet.Machine
	Done     int
	Refused  string
	Statuses map[string]int
}

// batch serves a batch's progress: every machine whose last order is one
// of the batch's (the fleet query order:<batch>-*), with its order's
// status, live.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	b := r.PathValue("batch")
	if !batchID.MatchString(b) {
		s.fail(w, r, http.StatusNotFound, fmt.Sprintf("%q is no batch of orders", b))
		return
	}
	d := batchData{Batch: b, Refused: r.URL.Query().Get("refused"), Statuses: map[string]int{}}
	after := ""
	for len(d.Machines) < maxResults {
		page, err := s.cfg.Fleet.Machines("order:"+b+"-*", 1000, after)
		if err != nil {
			s.failErr(w, r, err)
			return
		}
		d.Machines = append(d.Machines, page.Machines...)
		if after = page.Next; after == "" {
			break
		}
	}
	for _, m := range d.Machines {
		st := orderStatus(m)
		d.Statuses[st]++
		if st == fleet.OrderSucceeded || st == fleet.OrderFailed {
			d.Done++
		}
	}
	s.render(w, r, http.StatusOK, "batch", "Orders "+b, d)
}

// orderStatus is the machine's last order's status ("" if none).
func orderStatus(m *fleet.Machine) string {
	if m.LastOrder == nil {
		return ""
	}
	return m.LastOrder.Status
}
