package console

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/webui"
)

//go:embed assets templates
var files embed.FS

// Config configures the console.
type Config struct {
	// Store is this node's store: every page reads it, locally.
	Store *store.DB
	// Site makes the changes the console's buttons ask for, as the API's
	// routes do: on a follower they are forwarded to the leader.
	Site Proposer
	// Cluster is this node's view of the site's cluster.
	Cluster Cluster
	// SiteKey is the site key, which the session and CSRF keys derive
	// from (every node of the site has it).
	SiteKey *seal.Key
	// Lookup checks the token a session carries, on every request.
	Lookup httpapi.TokenLookup
	// API is the JSON API, served under /v1/. A browser's session opens
	// two of its routes (the serial console's websocket and the event
	// stream), which it reaches with the session's token.
	API http.Handler
	// Metrics is where the DHCP and TFTP servers keep their counters;
	// nil shows none.
	Metrics prometheus.Gatherer
	// Traces gathers a trace from every node of the site, for the
	// waterfall of a machine's latest provision; nil shows none.
	Traces api.Traces
	// Now is the clock sessions expire by; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Proposer is what the console changes through: the site's proposer.
type Proposer interface {
	PlaceOrder(ctx context.Context, o *store.Order) (*store.Order, error)
	PutMachine(ctx context.Context, m *store.Machine, expect uint64) (*store.Machine, error)
	BootPXE(ctx context.Context, machineID string, persistent, efi bool) (*store.Job, error)
}

// Cluster is what the console shows of the site's cluster.
type Cluster interface {
	Status() site.Status
}

// Server is the console.
type Server struct {
	cfg   Config
	auth  *webui.Auth
	now   func() time.Time
	log   *slog.Logger
	pages webui.Pages
}

// New returns the console.
func New(cfg Config) (*Server, error) {
	keys, err := webui.NewKeys(cfg.SiteKey.Derive, "outpost/console")
	if err != nil {
		return nil, err
	}
	pg, err := webui.ParsePages(files, nil)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, now: cfg.Now, log: cfg.Log, pages: pg}
	if s.now == nil {
		s.now = time.Now
	}
	s.auth = &webui.Auth{Keys: keys, Lookup: cfg.Lookup, Now: s.now, Version: s.lastSeq}
	return s, nil
}

// lastSeq is the event log's last sequence number: a page's live stream
// starts after the one read when its request came.
func (s *Server) lastSeq() (last uint64) {
	_ = s.cfg.Store.View(func(tx *store.Tx) error { last = tx.LastEventSeq(); return nil })
	return last
}

// Handler serves the console, and the JSON API under /v1/ with its
// /healthz and /metrics.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	httpapi.Register(authed, s.routes())
	own, _ := fs.Sub(files, "assets")
	// A change made from a page is recorded as the session's token's.
	pages := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := site.WithActor(r.Context(), webui.SessionOf(r.Context()).Caller.Name)
		authed.ServeHTTP(w, r.WithContext(ctx))
	})
	return webui.Handler(webui.Config{Auth: s.auth, Home: "/site", SignInPage: s.signInPage, Fail: s.fail,
		Pages: pages, Assets: own, API: s.cfg.API, APIPaths: []string{"GET /healthz", "GET /metrics"},
		Bridged: bridged, Log: s.log})
}

// routes lists every page and action of the console with the least role
// that may use it, as the API's route table does: the role is checked
// again on every request (httpapi.Register), whatever buttons a page
// showed. Every POST is also checked for its Origin and CSRF token
// (requireSession).
func (s *Server) routes() []httpapi.Route {
	const viewer, operator = access.Viewer, access.Operator
	return []httpapi.Route{
		{Pattern: "GET /site", Role: viewer, Handler: s.overview},
		{Pattern: "GET /machines", Role: viewer, Handler: s.machines},
		{Pattern: "POST /machines/power", Role: operator, Handler: s.bulkPower},
		{Pattern: "GET /machines/{id}", Role: viewer, Handler: s.machine},
		{Pattern: "POST /machines/{id}/power", Role: operator, Handler: s.power},
		{Pattern: "POST /machines/{id}/boot-pxe", Role: operator, Handler: s.bootPXE},
		{Pattern: "POST /machines/{id}/reprovision", Role: operator, Handler: s.reprovision},
		{Pattern: "POST /machines/{id}/deprovision", Role: operator, Handler: s.deprovision},
		{Pattern: "GET /charts", Role: viewer, Handler: s.charts},
		{Pattern: "GET /subnets", Role: viewer, Handler: s.subnets},
		{Pattern: "GET /events", Role: viewer, Handler: s.events},
		{Pattern: "GET /events/download", Role: viewer, Handler: s.downloadEvents},
		{Pattern: "GET /discovered", Role: viewer, Handler: s.discovered},
		{Pattern: "POST /discovered/{id}/enroll", Role: operator, Handler: s.enroll},
		webui.NotFound(s.fail),
	}
}

// bridged reports whether a session may open r's API route: the event
// stream, and the serial console's websocket (whose Origin must be the
// console's, since browsers let any page open a websocket with the
// cookie).
func bridged(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	p := r.URL.Path
	if p == "/v1/events/stream" {
		return true
	}
	rest, ok := strings.CutPrefix(p, "/v1/machines/")
	id, tail, _ := strings.Cut(rest, "/")
	return ok && id != "" && tail == "console"
}
