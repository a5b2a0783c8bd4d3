package portal_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/portal"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/sse"
	"github.com/outposthq/outpost/internal/tracing"
	"github.com/outposthq/outpost/internal/webui/webuitest"
)

// fakeFleet is a fleet.Reader over machines and sites the test sets;
// every change bumps the version and closes Changed's channel.
type fakeFleet struct {
	mu       sync.Mutex
	machines map[string]*fleet.Machine // site/id
	sites    []*fleet.Site
	events   map[string][]fleet.Event
	version  uint64
	changed  chan struct{}
}

func newFakeFleet() *fakeFleet {
	f := &fakeFleet{machines: map[string]*fleet.Machine{}, events: map[string][]fleet.Event{}, changed: make(chan struct{}), version: 1}
	f.sites = []*fleet.Site{
		{ID: "eu1", Name: "Frankfurt", Labels: map[string]string{"region": "eu"}, Link: fleet.Link{Connected: true, Revision: 7, AckedRevision: 7},
			Appliance: fleet.Appliance{Version: "0.14.0", Nodes: 3, Healthy: 3, Console: "https://eu1.example.test:8443"}},
		{ID: "us1", Labels: map[string]string{"region": "us"}, Link: fleet.Link{Revision: 5, AckedRevision: 3, EventsBehind: 12}},
	}
	for i := range 3 {
		f.put(&fleet.Machine{Site: "eu1", ID: fmt.Sprintf("m%d", i+1), Hostname: fmt.Sprintf("web%d", i+1), State: "ready",
			MACs: []string{fmt.Sprintf("52:54:00:00:00:0%d", i+1)}, Tags: []string{"web"}})
	}
	f.put(&fleet.Machine{Site: "eu1", ID: "m4", Hostname: "db1", State: "failed", Reason: "disk.wipe failed"})
	f.put(&fleet.Machine{Site: "us1", ID: "m1", Hostname: "edge1", State: "failed", Reason: "disk.wipe failed"})
	f.events["eu1/m1"] = []fleet.Event{{Source: "central", Seq: 7, Time: time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC),
		Kind: "order.placed", Message: "power cycle", By: "alice"}}
	return f
}

func (f *fakeFleet) put(m *fleet.Machine) { f.machines[m.Site+"/"+m.ID] = m }

// change changes the fleet under its lock and announces it.
func (f *fakeFleet) change(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
	f.version++
	close(f.changed)
	f.changed = make(chan struct{})
}

// match is the fake's search: state:, site:, order: (a glob of the last
// order's key) and tag: terms, - negating; any other term is refused.
func match(m *fleet.Machine, q string) (bool, error) {
	for i, term := range strings.Fields(q) {
		neg := strings.HasPrefix(term, "-")
		k, v, _ := strings.Cut(strings.TrimPrefix(term, "-"), ":")
		var ok bool
		switch k {
		case "state":
			ok = m.State == v
		case "site":
			ok, _ = path.Match(v, m.Site)
		case "tag":
			ok = slices.Contains(m.Tags, v)
		case "order":
			ok = m.LastOrder != nil
			if ok {
				ok, _ = path.Match(v, m.LastOrder.Key)
			}
		default:
			return false, errs.Invalid("q", "term %q (term %d): unknown field %q", term, i+1, k)
		}
		if ok == neg {
			return false, nil
		}
	}
	return true, nil
}

func (f *fakeFleet) Machines(q string, limit int, after string) (*fleet.Page, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*fleet.Machine
	for _, m := range f.machines {
		ok, err := match(m, q)
		if err != nil {
			return nil, err
		}
		if ok {
			c := *m
			all = append(all, &c)
		}
	}
	slices.SortFunc(all, func(a, b *fleet.Machine) int { return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.ID, b.ID)) })
	p := &fleet.Page{Total: len(all), Version: f.version}
	start := 0
	if after != "" {
		start, _ = strconv.Atoi(after)
	}
	end := min(start+limit, len(all))
	p.Machines = all[start:end]
	if end < len(all) {
		p.Next = strconv.Itoa(end)
	}
	return p, nil
}

func (f *fakeFleet) Machine(site, id string) (*fleet.Machine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.machines[site+"/"+id]
	if !ok {
		return nil, errs.NotFound("machine", site+"/"+id)
	}
	c := *m
	return &c, nil
}

func (f *fakeFleet) Timeline(site, id string, limit int) ([]fleet.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[site+"/"+id]), nil
}

func (f *fakeFleet) Sites() ([]*fleet.Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sites), nil
}

func (f *fakeFleet) Summary(now time.Time) (*fleet.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &fleet.Summary{Sites: len(f.sites), ByState: map[string]int{}}
	reasons := map[string]*fleet.FailureGroup{}
	for _, st := range f.sites {
		if st.Link.Connected {
			s.SitesConnected++
		}
	}
	for _, m := range f.machines {
		s.Machines++
		s.ByState[m.State]++
		if o := m.LastOrder; o != nil && o.Status != fleet.OrderSucceeded && o.Status != fleet.OrderFailed {
			s.InFlight = append(s.InFlight, m)
		}
		if m.State == "failed" {
			g := reasons[m.Reason]
			if g == nil {
				g = &fleet.FailureGroup{Reason: m.Reason}
				reasons[m.Reason] = g
			}
			g.Count++
			g.Machines = append(g.Machines, fleet.MachineRef{Site: m.Site, ID: m.ID})
		}
	}
	s.InFlightTotal = len(s.InFlight)
	for _, g := range reasons {
		s.Failures = append(s.Failures, *g)
	}
	return s, nil
}

func (f *fakeFleet) Version() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version
}

func (f *fakeFleet) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// fakePlacer previews from the fake fleet and places by setting each
// target's last order (status placed, or waiting at an offline site).
type fakePlacer struct {
	fleet  *fakeFleet
	mu     sync.Mutex
	placed []*orders.Request
	by     []string
	n      int
}

func (p *fakePlacer) Preview(ctx context.Context, req *orders.Request) (*orders.Preview, error) {
	targets := req.Targets
	if len(targets) == 0 {
		page, err := p.fleet.Machines(req.Query, 10000, "")
		if err != nil {
			return nil, err
		}
		for _, m := range page.Machines {
			targets = append(targets, orders.TargetRef{Site: m.Site, Machine: m.ID})
		}
	}
	out := &orders.Preview{Action: req.Action}
	for _, t := range targets {
		m, err := p.fleet.Machine(t.Site, t.Machine)
		if err != nil {
			return nil, err
		}
		it := orders.PreviewItem{TargetRef: t, Hostname: m.Hostname, State: m.State, Will: req.Action + " " + req.Params.Power + req.Params.Image,
			Offline: t.Site == "us1"}
		if m.Hostname == "db1" {
			it.Problem = "an order is still running"
			out.Refused++
		}
		out.Items = append(out.Items, it)
	}
	return out, nil
}

func (p *fakePlacer) Place(ctx context.Context, by, from string, req *orders.Request) (*orders.Result, error) {
	p.mu.Lock()
	p.n++
	batch := fmt.Sprintf("b1796623200-%04d", p.n)
	p.placed = append(p.placed, req)
	p.by = append(p.by, by)
	p.mu.Unlock()
	res := &orders.Result{Batch: batch}
	p.fleet.change(func() {
		for i, t := range req.Targets {
			key := fmt.Sprintf("%s-%d", batch, i)
			m := p.fleet.machines[t.Site+"/"+t.Machine]
			st := fleet.OrderPlaced
			if t.Site == "us1" {
				st = fleet.OrderWaiting
			}
			m.LastOrder = &fleet.Order{Key: key, Action: req.Action, By: by, Status: st, Placed: time.Now()}
			res.Placed = append(res.Placed, orders.Placed{TargetRef: t, Order: key})
		}
	})
	return res, nil
}

// setStatus sets the status of the last order of each machine of the
// batch.
func (f *fakeFleet) setStatus(batch, status string) {
	f.change(func() {
		for _, m := range f.machines {
			if m.LastOrder != nil && strings.HasPrefix(m.LastOrder.Key, batch+"-") {
				m.LastOrder.Status = status
			}
		}
	})
}

type fakeAudit struct{ entries []orders.AuditEntry }

func (a *fakeAudit) Audit(f orders.AuditFilter) ([]orders.AuditEntry, error) {
	var out []orders.AuditEntry
	for _, e := range a.entries {
		if e.Seq > f.After && (f.By == "" || e.By == f.By) && (f.Action == "" || e.Action == f.Action) && len(out) < f.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// fakeTraces holds the spans of traces the test sets.
type fakeTraces struct {
	mu     sync.Mutex
	traces map[string][]tracing.Span
}

func (f *fakeTraces) Trace(id string) ([]tracing.Span, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.traces[id]), nil
}

func (f *fakeTraces) set(id string, spans []tracing.Span) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.traces[id] = spans
}

type fakeDesired struct{}

func (fakeDesired) CatalogueImages() ([]*store.CatalogueImage, error) {
	return []*store.CatalogueImage{{Name: "debian-12", Placed: map[string]uint64{"eu1": 6, "us1": 5},
		Image:     []byte(`{"name":"debian-12","type":"os","sha256":"` + strings.Repeat("ab", 32) + `"}`),
		Placement: store.Placement{SiteLabels: map[string]string{"tier": "all"}}, UpdatedBy: "admin"}}, nil
}

func (fakeDesired) ListDesired(site, kind string) ([]store.Item, error) {
	if kind != store.KindTemplate || site != "eu1" {
		return nil, nil
	}
	return []store.Item{{Kind: kind, Key: "raw", Object: []byte(`{"name":"raw","actions":[{"name":"wipe","type":"disk.wipe"},{"name":"write","type":"image.write"}]}`)}}, nil
}

// tokens are the test's: one of each role.
var tokens = map[string]struct {
	name string
	role access.Role
}{
	"tok-viewer": {"vera", access.Viewer}, "tok-operator": {"olga", access.Operator}, "tok-admin": {"ada", access.Admin},
}

func lookup(token string) (string, access.Grant, bool) {
	t, ok := tokens[token]
	return t.name, access.Grant{Role: t.role}, ok
}

// fakeAPI is the part of central's API the portal's pages open: the
// fleet's stream (as the fleet's API serves it: an event "fleet" with
// the version as its id at each change, resuming after Last-Event-ID or
// ?since=), behind the tokens.
func fakeAPI(f *fakeFleet) http.Handler {
	authed := http.NewServeMux()
	httpapi.Register(authed, []httpapi.Route{
		{Pattern: "GET /v1/fleet/stream", Role: access.Viewer, Handler: f.stream},
		{Pattern: "POST /v1/artifacts", Role: access.Operator, Handler: upload},
	})
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"healthy":true}`)) })
	root.Handle("/", httpapi.Authenticate("outpost central", lookup, time.Now, authed))
	return root
}

// upload stores nothing: it answers the body's sha256, as central's
// artifact store does.
func upload(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	n, _ := io.Copy(h, r.Body)
	httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"sha256": hex.EncodeToString(h.Sum(nil)), "size": n,
		"name": r.URL.Query().Get("name")})
}

// stream is the fleet's Server-Sent Events stream.
func (f *fakeFleet) stream(w http.ResponseWriter, r *http.Request) {
	since, _ := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	since = sse.Resume(r, since)
	sw, err := sse.Start(w)
	if err != nil {
		return
	}
	for {
		ch, v := f.Changed(), f.Version()
		if v > since {
			since = v
			if sw.Event(strconv.FormatUint(v, 10), "fleet", fmt.Appendf(nil, `{"version":%d}`, v)) != nil || sw.Flush() != nil {
				return
			}
		}
		select {
		case <-ch:
		case <-r.Context().Done():
			return
		}
	}
}

// env is the portal over the fakes, on a loopback test server.
type env struct {
	fleet   *fakeFleet
	placer  *fakePlacer
	traces  *fakeTraces
	history *fakeHistory
	srv     *httptest.Server
	webuitest.Client
}

func start(t *testing.T) *env {
	t.Helper()
	f := newFakeFleet()
	p := &fakePlacer{fleet: f}
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	audit := &fakeAudit{entries: []orders.AuditEntry{
		{Seq: 1, Time: time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC), By: "olga", Role: "operator", From: "192.0.2.7", Action: "order.place", Target: "b1-0001", Detail: "power cycle, 3 machines", Status: 200},
		{Seq: 2, Time: time.Date(2026, 12, 7, 6, 5, 0, 0, time.UTC), By: "ada", Role: "admin", From: "192.0.2.8", Action: "site.create", Target: "us1", Status: 201},
	}}
	traces := &fakeTraces{traces: map[string][]tracing.Span{}}
	history := newFakeHistory(time.Now())
	srv, err := portal.New(portal.Config{Fleet: f, Orders: p, Audit: audit, Desired: fakeDesired{}, Traces: traces, History: history, DeriveKey: key.Derive,
		Lookup: lookup, API: fakeAPI(f), Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{fleet: f, placer: p, traces: traces, history: history, srv: hs, Client: webuitest.Client{URL: hs.URL, HTTP: hs.Client()}}
}

// signIn signs in with the token of role and returns the cookie and the
// CSRF token.
func (e *env) signIn(t *testing.T, role string) (*http.Cookie, string) {
	t.Helper()
	return e.SignIn(t, "tok-"+role, "/fleet")
}
