package testcentral

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/sse"
)

// Fleet is a fake of central's fleet, orders and audit routes
// (/v1/fleet/*, /v1/orders*, /v1/audit) for the unit tests of their
// clients: it answers central's own types from machines the test sets,
// with a query grammar of site:<glob>, state:<state> and id:<glob> terms
// alone (the real one is central's fleet package's). Real central is
// for what proves the product works; this is for the logic of the
// clients, before and beside it.
type Fleet struct {
	URL string
	// PageSize is the most machines a page holds when the request asks
	// no limit (small, so that clients page).
	PageSize int

	mu       sync.Mutex
	machines map[string]*fleet.Machine // by site/id
	sites    []*fleet.Site
	timeline map[string][]fleet.Event
	audit    []orders.AuditEntry
	version  uint64
	changed  chan struct{}
	placed   []orders.Request
	resumes  []string // the Last-Event-ID of each stream request
	drop     chan struct{}
}

// StartFleet serves a fake fleet until the test ends.
func StartFleet(t testing.TB) *Fleet {
	f := &Fleet{PageSize: 2, machines: map[string]*fleet.Machine{}, timeline: map[string][]fleet.Event{},
		changed: make(chan struct{}), drop: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/fleet/machines", f.listMachines)
	mux.HandleFunc("GET /v1/fleet/machines/{site}/{id}", f.getMachine)
	mux.HandleFunc("GET /v1/fleet/machines/{site}/{id}/timeline", f.getTimeline)
	mux.HandleFunc("GET /v1/fleet/sites", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sites": f.sites})
	})
	mux.HandleFunc("GET /v1/fleet/stream", f.stream)
	mux.HandleFunc("POST /v1/orders/preview", f.preview)
	mux.HandleFunc("POST /v1/orders", f.place)
	mux.HandleFunc("GET /v1/audit", f.listAudit)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(f.DropStreams)
	f.URL = srv.URL
	return f
}

// Set puts machines (new or changed) and makes a new version of the
// fleet, which the stream announces.
func (f *Fleet) Set(ms ...*fleet.Machine) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range ms {
		c := *m
		f.machines[m.Site+"/"+m.ID] = &c
	}
	f.version++
	close(f.changed)
	f.changed = make(chan struct{})
}

// SetSites sets the sites /v1/fleet/sites answers.
func (f *Fleet) SetSites(sites ...*fleet.Site) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sites = sites
}

// SetTimeline sets a machine's timeline, newest first.
func (f *Fleet) SetTimeline(site, id string, events ...fleet.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timeline[site+"/"+id] = events
}

// AddAudit appends audit entries.
func (f *Fleet) AddAudit(entries ...orders.AuditEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audit = append(f.audit, entries...)
}

// Placed returns the requests POST /v1/orders was sent.
func (f *Fleet) Placed() []orders.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.placed)
}

// Resumes returns the Last-Event-ID of every stream request so far ("":
// none).
func (f *Fleet) Resumes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.resumes)
}

// DropStreams ends every open stream, as a central node going away
// would.
func (f *Fleet) DropStreams() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.drop)
	f.drop = make(chan struct{})
}

func (f *Fleet) listMachines(w http.ResponseWriter, r *http.Request) {
	match, err := fakeQuery(r.URL.Query().Get("q"))
	if err != nil {
		httpapi.WriteError(w, err)
		return
	}
	limit := f.PageSize
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 {
		limit = l
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*fleet.Machine
	for _, m := range f.machines {
		if match(m) {
			all = append(all, m)
		}
	}
	slices.SortFunc(all, func(a, b *fleet.Machine) int { return strings.Compare(a.Site+"/"+a.ID, b.Site+"/"+b.ID) })
	after := r.URL.Query().Get("after")
	start, _ := slices.BinarySearchFunc(all, after, func(m *fleet.Machine, k string) int {
		if k == "" {
			return 1
		}
		return strings.Compare(m.Site+"/"+m.ID, k+"\x00")
	})
	p := &fleet.Page{Machines: all[start:min(start+limit, len(all))], Total: len(all), Version: f.version}
	if start+limit < len(all) {
		last := p.Machines[len(p.Machines)-1]
		p.Next = last.Site + "/" + last.ID
	}
	if p.Machines == nil {
		p.Machines = []*fleet.Machine{}
	}
	httpapi.WriteJSON(w, http.StatusOK, p)
}

// fakeQuery reads the fake's grammar: site:, state: and id: terms, all
// of which a machine matches.
func fakeQuery(q string) (func(*fleet.Machine) bool, *errs.Error) {
	var tests []func(*fleet.Machine) bool
	for _, term := range strings.Fields(q) {
		key, val, _ := strings.Cut(term, ":")
		switch key {
		case "site":
			tests = append(tests, func(m *fleet.Machine) bool { ok, _ := path.Match(val, m.Site); return ok })
		case "id":
			tests = append(tests, func(m *fleet.Machine) bool { ok, _ := path.Match(val, m.ID); return ok })
		case "state":
			tests = append(tests, func(m *fleet.Machine) bool { return m.State == val })
		default:
			return nil, errs.Invalid("q", "unknown term %q", term)
		}
	}
	return func(m *fleet.Machine) bool {
		for _, t := range tests {
			if !t(m) {
				return false
			}
		}
		return true
	}, nil
}

func (f *Fleet) getMachine(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[r.PathValue("site")+"/"+r.PathValue("id")]
	if !ok {
		httpapi.WriteError(w, errs.NotFound("machine", r.PathValue("site")+"/"+r.PathValue("id")))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, m)
}

func (f *Fleet) getTimeline(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	events := f.timeline[r.PathValue("site")+"/"+r.PathValue("id")]
	if l, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && l > 0 && l < len(events) {
		events = events[:l]
	}
	if events == nil {
		events = []fleet.Event{}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"events": events})
}

// stream announces each version after Last-Event-ID (or ?since=; none:
// from the current one), as central's does, until DropStreams.
func (f *Fleet) stream(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.resumes = append(f.resumes, r.Header.Get("Last-Event-ID"))
	since := sse.Resume(r, f.version)
	drop := f.drop
	f.mu.Unlock()
	sw, err := sse.Start(w)
	if err != nil {
		httpapi.WriteError(w, &errs.Error{Code: "internal", Message: err.Error()})
		return
	}
	for {
		f.mu.Lock()
		version, changed := f.version, f.changed
		f.mu.Unlock()
		if version > since {
			since = version
			data := fmt.Appendf(nil, `{"version":%d}`, version)
			if sw.Event(strconv.FormatUint(version, 10), "fleet", data) != nil || sw.Flush() != nil {
				return
			}
		}
		select {
		case <-changed:
		case <-drop:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (f *Fleet) preview(w http.ResponseWriter, r *http.Request) {
	var req orders.Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpapi.WriteError(w, errs.Invalid("body", "%v", err))
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, f.previewOf(&req))
}

func (f *Fleet) previewOf(req *orders.Request) *orders.Preview {
	p := &orders.Preview{Action: req.Action, Items: []orders.PreviewItem{}}
	targets := req.Targets
	if len(targets) == 0 {
		match, _ := fakeQuery(req.Query)
		f.mu.Lock()
		for _, m := range f.machines {
			if match != nil && match(m) {
				targets = append(targets, orders.TargetRef{Site: m.Site, Machine: m.ID})
			}
		}
		f.mu.Unlock()
	}
	for _, t := range targets {
		p.Items = append(p.Items, orders.PreviewItem{TargetRef: t, Will: req.Action})
	}
	return p
}

func (f *Fleet) place(w http.ResponseWriter, r *http.Request) {
	var req orders.Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpapi.WriteError(w, errs.Invalid("body", "%v", err))
		return
	}
	f.mu.Lock()
	f.placed = append(f.placed, req)
	f.mu.Unlock()
	res := &orders.Result{Placed: []orders.Placed{}}
	for i, it := range f.previewOf(&req).Items {
		res.Placed = append(res.Placed, orders.Placed{TargetRef: it.TargetRef, Order: fmt.Sprintf("b1-x-%d", i), Revision: 1})
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
}

// listAudit answers the entries by= and action= select, as JSON, JSON
// lines or CSV (format=).
func (f *Fleet) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f.mu.Lock()
	var out []orders.AuditEntry
	for _, e := range f.audit {
		if (q.Get("by") == "" || e.By == q.Get("by")) && (q.Get("action") == "" || e.Action == q.Get("action")) {
			out = append(out, e)
		}
	}
	f.mu.Unlock()
	switch q.Get("format") {
	case "jsonl":
		enc := json.NewEncoder(w)
		for _, e := range out {
			enc.Encode(e)
		}
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write([]string{"seq", "time", "by", "action", "target", "status"})
		for _, e := range out {
			cw.Write([]string{strconv.FormatUint(e.Seq, 10), e.Time.Format("2006-01-02T15:04:05Z07:00"), e.By, e.Action, e.Target, strconv.Itoa(e.Status)})
		}
		cw.Flush()
	default:
		if out == nil {
			out = []orders.AuditEntry{}
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"entries": out})
	}
}

// Central's fleet and audit types, for the tests outside central's tree
// that set the fake's machines.
type (
	Machine    = fleet.Machine
	Order      = fleet.Order
	Workflow   = fleet.Workflow
	Event      = fleet.Event
	Site       = fleet.Site
	Link       = fleet.Link
	Appliance  = fleet.Appliance
	AuditEntry = orders.AuditEntry
)
