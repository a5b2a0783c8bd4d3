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

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/seal"
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
	cfg    Config
	keys   sessionKeys
	lookup httpapi.TokenLookup
	now    func() time.Time
	log    *slog.Logger
	pages  pages
}

// New returns the console.
func New(cfg Config) (*Server, error) {
	keys, err := newSessionKeys(cfg.SiteKey)
	if err != nil {
		return nil, err
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, keys: keys, lookup: cfg.Lookup, now: cfg.Now, log: cfg.Log, pages: pg}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Handler serves the console, and the JSON API under /v1/ with its
// /healthz and /metrics.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	httpapi.Register(authed, s.routes())

	assets, _ := fs.Sub(files, "assets")
	root := http.NewServeMux()
	root.HandleFunc("GET /{$}", s.signInPage)
	root.HandleFunc("POST /signin", s.signIn)
	// Signing out changes nothing but the browser's cookie: any session
	// may, with its CSRF token.
	root.Handle("POST /signout", s.requireSession(http.HandlerFunc(s.signOut)))
	root.Handle("GET /assets/", http.StripPrefix("/assets/", cacheAssets(http.FileServerFS(assets))))
	root.Handle("/v1/", s.bridge(s.cfg.API))
	// The API's unauthenticated probes keep their paths.
	if s.cfg.API != nil {
		root.Handle("GET /healthz", s.cfg.API)
		root.Handle("GET /metrics", s.cfg.API)
	}
	root.Handle("/", s.requireSession(authed))
	return securityHeaders(root)
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
		{Pattern: "GET /subnets", Role: viewer, Handler: s.subnets},
		{Pattern: "GET /events", Role: viewer, Handler: s.events},
		{Pattern: "GET /events/download", Role: viewer, Handler: s.downloadEvents},
		{Pattern: "GET /discovered", Role: viewer, Handler: s.discovered},
		{Pattern: "POST /discovered/{id}/enroll", Role: operator, Handler: s.enroll},
		{Pattern: "/", Role: viewer, Handler: func(w http.ResponseWriter, r *http.Request) {
			s.fail(w, r, http.StatusNotFound, "there is no page at "+r.URL.Path)
		}},
	}
}

// requireSession sends a browser without a valid session to the sign-in
// page (a change gets 401), refuses a change that did not come from the
// console's own pages (403), and hands the request on with its session.
func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		si, ok := s.authenticate(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, http.StatusUnauthorized, "you are not signed in, or your session ended: sign in again")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := checkChange(r, si); err != nil {
				s.fail(w, r, http.StatusForbidden, err.Error())
				return
			}
		}
		_ = s.cfg.Store.View(func(tx *store.Tx) error { si.LastSeq = tx.LastEventSeq(); return nil })
		next.ServeHTTP(w, r.WithContext(withSession(r.Context(), si)))
	})
}

// bridge serves the API. A request with no Authorization header but a
// session cookie may use the two API routes the console's pages open
// with the session's token: the event stream, and the serial console's
// websocket (whose Origin must be the console's, since browsers let any
// page open a websocket with the cookie).
func (s *Server) bridge(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && bridged(r) {
			if si, ok := s.authenticate(r); ok {
				if err := checkOrigin(r); isWebsocket(r) && err != nil {
					s.fail(w, r, http.StatusForbidden, err.Error())
					return
				}
				r = r.Clone(r.Context())
				r.Header.Set("Authorization", "Bearer "+si.Token)
			}
		}
		api.ServeHTTP(w, r)
	})
}

// bridged reports whether a session may open r's API route.
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

func isWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// securityHeaders allows the pages nothing but the appliance itself:
// scripts, styles, images and connections from its own origin only
// (inline styles too: xterm.js writes its theme into a style element;
// no inline script runs).
func securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"connect-src 'self'; font-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			h := w.Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "same-origin")
		}
		next.ServeHTTP(w, r)
	})
}

// cacheAssets lets a browser keep the assets for an hour: they change
// only with the binary.
func cacheAssets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=3600")
		next.ServeHTTP(w, r)
	})
}
