package api

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
)

// Config configures the API server.
type Config struct {
	Node *replica.Node
	// SiteKey seals secrets before they are proposed.
	SiteKey *seal.Key
	Log     *slog.Logger
	// Registry receives the API's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Now is the clock for command timestamps; time.Now if nil.
	Now func() time.Time
	// BootURL is the boot HTTP service's base URL as machines reach it
	// (http://host:port), given to new workflows as the values boot_url
	// and metadata_url. Empty leaves them to the workflow's values.
	BootURL string
}

// Server is the appliance API.
type Server struct {
	node    *replica.Node
	db      *store.DB
	key     *seal.Key
	log     *slog.Logger
	now     func() time.Time
	reg     *prometheus.Registry
	metrics *metrics
	bootURL string
}

// New returns the API server.
func New(cfg Config) *Server {
	s := &Server{
		node: cfg.Node,
		db:   cfg.Node.DB(),
		key:  cfg.SiteKey,
		log:  cfg.Log,
		now:  cfg.Now,
		reg:  cfg.Registry,

		bootURL: cfg.BootURL,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(s.reg)
	return s
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	s.routes(authed)

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", s.health)
	root.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	root.Handle(replica.InternalPrefix, s.node.InternalHandler())
	root.Handle("/", s.requireToken(authed))
	return s.instrument(root)
}

// routes lists every authenticated route, in one table.
func (s *Server) routes(mux *http.ServeMux) {
	machines.register(mux, s)
	subnets.register(mux, s)
	leases.register(mux, s)
	images.register(mux, s)
	templates.register(mux, s)
	workflows.register(mux, s)
	mux.HandleFunc("POST /v1/workflows/{key}/cancel", s.cancelWorkflow)
	orders.register(mux, s)
	jobs.register(mux, s)

	mux.HandleFunc("GET /v1/events", s.listEvents)
	mux.HandleFunc("POST /v1/events", s.postEvent)
	mux.HandleFunc("GET /v1/events/stream", s.streamEvents)

	mux.HandleFunc("GET /v1/settings", s.getSettings)
	mux.HandleFunc("PUT /v1/settings", s.putSettings)

	tokens.register(mux, s) // list, get, delete; the hash never shown
	mux.HandleFunc("POST /v1/tokens", s.createToken)

	mux.HandleFunc("GET /v1/cluster", s.clusterStatus)
	mux.HandleFunc("POST /v1/cluster/join", s.clusterJoin)
	mux.HandleFunc("DELETE /v1/cluster/members/{id}", s.clusterRemove)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: &errs.Error{
			Code: errs.CodeNotFound, Message: "no route for " + r.Method + " " + r.URL.Path,
		}})
	})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.node.Status()
	code := http.StatusOK
	if !st.Healthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"healthy": st.Healthy, "problem": st.Problem, "state": st.State})
}
