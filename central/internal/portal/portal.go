package portal

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/webui"
)

//go:embed assets templates
var files embed.FS

// Config configures the portal.
type Config struct {
	// Fleet is what every page reads the fleet through.
	Fleet fleet.Reader
	// Orders previews and places the orders the forms ask for; nil
	// answers them 503 (and the pages show no order form).
	Orders orders.Placer
	// Audit reads the audit; nil shows none.
	Audit orders.Auditor
	// Desired is central's own records: the catalogue and each site's
	// desired templates (*store.DB).
	Desired Desired
	// Traces reads the traces of orders (*store.DB): a machine's page
	// draws its last order's waterfall. Nil shows none.
	Traces Traces
	// History reads the provisions that ended and the annotations
	// (*store.DB): the charts page draws them over a window. Nil shows
	// no timeline.
	History History
	// DeriveKey derives the session and CSRF keys from central's key
	// (store.DB.DeriveKey): every node of a replicated central opens a
	// session another sealed.
	DeriveKey func(purpose string) []byte
	// Lookup checks the token a session carries, on every request.
	Lookup httpapi.TokenLookup
	// API is central's JSON API, served under /v1/ with its /healthz and
	// /metrics. A session opens two of its routes: the fleet's stream,
	// and an artifact's upload (a POST, checked as every change is).
	API http.Handler
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Desired is what the portal reads of central's own records.
type Desired interface {
	CatalogueImages() ([]*store.CatalogueImage, error)
	ListDesired(site, kind string) ([]store.Item, error)
}

// Server is the portal.
type Server struct {
	cfg   Config
	auth  *webui.Auth
	now   func() time.Time
	log   *slog.Logger
	pages webui.Pages
	// ends caches the charts' reads of the provisions that ended
	// (timeline.go).
	ends endsCache
}

// New returns the portal.
func New(cfg Config) (*Server, error) {
	keys, err := webui.NewKeys(cfg.DeriveKey, "outpost/portal")
	if err != nil {
		return nil, err
	}
	pg, err := webui.ParsePages(files, funcs)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, now: cfg.Now, log: cfg.Log, pages: pg}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Fleet == nil {
		s.cfg.Fleet = unwired{}
	}
	s.auth = &webui.Auth{Keys: keys, Lookup: cfg.Lookup, Now: s.now, Version: s.cfg.Fleet.Version}
	return s, nil
}

// Handler serves the portal, and central's API under /v1/ with its
// /healthz and /metrics.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	httpapi.Register(authed, s.routes())
	own, _ := fs.Sub(files, "assets")
	return webui.Handler(webui.Config{Auth: s.auth, Home: "/fleet", SignInPage: s.signInPage, Fail: s.fail,
		Pages: authed, Assets: own, API: s.cfg.API, APIPaths: apiPaths,
		Bridged: bridged, Log: s.log})
}

// apiPaths are what the API answers besides /v1/: its probes, and
// /internal/, which it refuses on this port (the members' peer routes
// are on the Raft port).
var apiPaths = []string{"GET /healthz", "GET /metrics", "/internal/"}

// routes lists every page and action of the portal with the least role
// that may use it, as the API's route table does: the role is checked
// again on every request (httpapi.Register), whatever buttons a page
// showed. Every POST is also checked for its Origin and CSRF token
// (webui's Guard).
func (s *Server) routes() []httpapi.Route {
	const viewer, operator = access.Viewer, access.Operator
	return []httpapi.Route{
		{Pattern: "GET /fleet", Role: viewer, Handler: s.overview},
		{Pattern: "GET /machines", Role: viewer, Handler: s.machines},
		{Pattern: "GET /machines/{site}/{id}", Role: viewer, Handler: s.machine},
		{Pattern: "POST /orders/preview", Role: operator, Handler: s.preview},
		{Pattern: "POST /orders", Role: operator, Handler: s.place},
		{Pattern: "GET /orders/{batch}", Role: viewer, Handler: s.batch},
		{Pattern: "GET /images", Role: viewer, Handler: s.images},
		{Pattern: "GET /templates", Role: viewer, Handler: s.templates},
		{Pattern: "GET /sites", Role: viewer, Handler: s.sites},
		{Pattern: "GET /charts", Role: viewer, Handler: s.charts},
		// The audit is an operator's, as the API's GET /v1/audit is.
		{Pattern: "GET /audit", Role: operator, Handler: s.audit},
		{Pattern: "GET /audit/download", Role: operator, Handler: s.downloadAudit},
		webui.NotFound(s.fail),
	}
}

// bridged reports whether a session may open r's API route: the
// fleet's event stream, and an artifact's upload from the images page
// (a POST: webui checks its Origin and CSRF token, the API its role).
func bridged(r *http.Request) bool {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/fleet/stream":
		return true
	case r.Method == http.MethodPost && r.URL.Path == "/v1/artifacts":
		return true
	}
	return false
}

// errUnwired answers the pages of a central whose fleet model is not
// wired.
var errUnwired = &errs.Error{Code: httpapi.CodeUnavailable, Message: "this central has no fleet model"}

// unwired is the fleet of a central without a fleet model: every read
// is errUnwired.
type unwired struct{}

func (unwired) Machines(string, int, string) (*fleet.Page, error)   { return nil, errUnwired }
func (unwired) Machine(string, string) (*fleet.Machine, error)      { return nil, errUnwired }
func (unwired) Timeline(string, string, int) ([]fleet.Event, error) { return nil, errUnwired }
func (unwired) Sites() ([]*fleet.Site, error)                       { return nil, errUnwired }
func (unwired) Summary(time.Time) (*fleet.Summary, error)           { return nil, errUnwired }
func (unwired) Version() uint64                                     { return 0 }
func (unwired) Changed() <-chan struct{}                            { return nil }
