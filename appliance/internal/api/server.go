package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
)

// Config configures the API server.
type Config struct {
	// Site makes every change the API asks for: it prepares and proposes
	// it, and returns what the site's state machine made of it.
	Site *site.Proposer
	// Store is this node's store, which reads are served from.
	Store *store.DB
	// Cluster is this node's membership of the site's cluster.
	Cluster Cluster
	// Internal serves the node-to-node endpoints under
	// cluster.InternalPrefix (authenticated by the cluster secret, not by
	// tokens); nil serves none.
	Internal http.Handler
	// SiteKey is sealed for a node that joins.
	SiteKey *seal.Key
	Log     *slog.Logger
	// Registry receives the API's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Console serves the machines' serial consoles (console.go).
	Console ConsoleConfig
}

// Cluster is what the API needs of this node's membership of the site's
// cluster: linearizable reads, the status, and the members.
type Cluster interface {
	// Linearize waits until the local store reflects every write
	// committed before the call.
	Linearize(ctx context.Context) error
	Status() site.Status
	IsLeader() bool
	// AddVoter makes a node a voting member (forwarded to the leader).
	AddVoter(ctx context.Context, m store.Member) error
	// RemoveServer removes a member; it runs on the leader.
	RemoveServer(ctx context.Context, id string) error
}

// InternalPrefix is the path prefix of the node-to-node endpoints.
const InternalPrefix = "/v1/internal/"

// Server is the appliance API.
type Server struct {
	site     *site.Proposer
	db       *store.DB
	cluster  Cluster
	internal http.Handler
	key      *seal.Key
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *metrics
	consoles ConsoleConfig
}

// New returns the API server.
func New(cfg Config) *Server {
	s := &Server{
		site:     cfg.Site,
		db:       cfg.Store,
		cluster:  cfg.Cluster,
		internal: cfg.Internal,
		key:      cfg.SiteKey,
		log:      cfg.Log,
		reg:      cfg.Registry,
		consoles: cfg.Console,
	}
	if s.internal == nil {
		s.internal = http.NotFoundHandler()
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
	root.Handle(InternalPrefix, s.internal)
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
	mux.HandleFunc("GET /v1/machines/{id}/console", s.console) // a websocket

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
	st := s.cluster.Status()
	code := http.StatusOK
	if !st.Healthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"healthy": st.Healthy, "problem": st.Problem, "state": st.State})
}
