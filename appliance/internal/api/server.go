package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
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
	// SiteKey is sealed for a node that joins.
	SiteKey *seal.Key
	// Now is the clock tokens expire by; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// Registry receives the API's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Console serves the machines' serial consoles (console.go).
	Console ConsoleConfig
	// APICA is the site API CA's certificate (PEM) and fingerprint,
	// served by GET /v1/ca; empty answers 404.
	APICA, APICAFingerprint string
	// Artifacts is this node's artifacts, shown by GET /v1/artifacts;
	// nil shows the site's records alone.
	Artifacts Artifacts
	// Traces gathers traces from every node of the site (GET
	// /v1/traces/{trace_id}); nil: no spans are kept, every trace is
	// not found.
	Traces Traces
}

// Cluster is what the API needs of this node's membership of the site's
// cluster: linearizable reads, the status, and the members.
type Cluster interface {
	// Linearize waits until the local store reflects every write
	// committed before the call.
	Linearize(ctx context.Context) error
	Status() site.Status
	IsLeader() bool
	// Join admits a node (the member record and the Raft configuration
	// change are the leader's): with its public key (PKIX DER) it is
	// pinned to that key and gets a certificate from the site's CA; it
	// enters as a voter, or as a non-voter that catches up first. It
	// returns the certificate and the members the node may trust until
	// it has their records.
	Join(ctx context.Context, m store.Member, publicKey []byte, voter bool) (cert []byte, members []store.Member, err error)
	// RemoveServer removes a member; it runs on the leader.
	RemoveServer(ctx context.Context, id string) error
	// RotateCA takes a step of a rotation of the site's CA (site.CABegin,
	// site.CAFinish) and returns where the rotation stands.
	RotateCA(ctx context.Context, step string) (*store.CA, error)
}

// Server is the appliance API.
type Server struct {
	site      *site.Proposer
	db        *store.DB
	cluster   Cluster
	key       *seal.Key
	now       func() time.Time
	log       *slog.Logger
	reg       *prometheus.Registry
	metrics   *metrics
	consoles  ConsoleConfig
	artifacts Artifacts
	traces    Traces

	caPEM         []byte
	caFingerprint string
}

// New returns the API server.
func New(cfg Config) *Server {
	s := &Server{
		site:      cfg.Site,
		db:        cfg.Store,
		cluster:   cfg.Cluster,
		key:       cfg.SiteKey,
		now:       cfg.Now,
		log:       cfg.Log,
		reg:       cfg.Registry,
		consoles:  cfg.Console,
		artifacts: cfg.Artifacts,
		traces:    cfg.Traces,

		caPEM:         []byte(cfg.APICA),
		caFingerprint: cfg.APICAFingerprint,
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

// Handler returns the API's routes: /healthz, /metrics and /v1/ca for anyone,
// and every other route for the holders of a token whose role allows it (routes).
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	httpapi.Register(authed, traced(s.routes()))

	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", s.health)
	root.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	root.HandleFunc("GET "+httpapi.CAPath, httpapi.ServeCA(s.caPEM, s.caFingerprint))
	root.Handle("/", s.requireToken(authed))
	return withSpans(s.instrument(root))
}

// routes lists every route a token opens, with the least role that may
// use it, in one table: reads are a viewer's; changes to what the site
// provisions an operator's; tokens, membership, settings and secrets an
// admin's. A route is served only through this table (httpapi.Register).
func (s *Server) routes() []httpapi.Route {
	const viewer, operator, admin = access.Viewer, access.Operator, access.Admin
	return []httpapi.Route{
		{Pattern: "GET /v1/machines", Role: viewer, Handler: s.listMachines},
		{Pattern: "GET /v1/machines/{key}", Role: viewer, Handler: on(s, machines.get)},
		{Pattern: "PUT /v1/machines/{key}", Role: operator, Handler: on(s, machines.putOne)},
		{Pattern: "DELETE /v1/machines/{key}", Role: operator, Handler: on(s, machines.delete)},
		{Pattern: "POST /v1/machines/{key}/bmc/accept-certificate", Role: operator, Handler: s.acceptBMCCertificate},
		{Pattern: "POST /v1/machines/{key}/boot-pxe", Role: operator, Handler: s.bootPXE},
		// A websocket: a viewer watches, an operator types (?write=true).
		{Pattern: "GET /v1/machines/{id}/console", Role: viewer, Handler: s.console},
		{Pattern: "GET /v1/subnets", Role: viewer, Handler: on(s, subnets.list)},
		{Pattern: "GET /v1/subnets/{key}", Role: viewer, Handler: on(s, subnets.get)},
		{Pattern: "PUT /v1/subnets/{key}", Role: operator, Handler: on(s, subnets.putOne)},
		{Pattern: "DELETE /v1/subnets/{key}", Role: operator, Handler: on(s, subnets.delete)},
		{Pattern: "GET /v1/leases", Role: viewer, Handler: on(s, leases.list)},
		{Pattern: "GET /v1/leases/{key}", Role: viewer, Handler: on(s, leases.get)},
		{Pattern: "DELETE /v1/leases/{key}", Role: operator, Handler: on(s, leases.delete)},
		{Pattern: "GET /v1/images", Role: viewer, Handler: on(s, images.list)},
		{Pattern: "GET /v1/images/{key}", Role: viewer, Handler: on(s, images.get)},
		{Pattern: "PUT /v1/images/{key}", Role: operator, Handler: on(s, images.putOne)},
		{Pattern: "DELETE /v1/images/{key}", Role: operator, Handler: on(s, images.delete)},
		{Pattern: "GET /v1/templates", Role: viewer, Handler: on(s, templates.list)},
		{Pattern: "GET /v1/templates/{key}", Role: viewer, Handler: on(s, templates.get)},
		{Pattern: "PUT /v1/templates/{key}", Role: operator, Handler: on(s, templates.putOne)},
		{Pattern: "DELETE /v1/templates/{key}", Role: operator, Handler: on(s, templates.delete)},
		{Pattern: "GET /v1/workflows", Role: viewer, Handler: on(s, workflows.list)},
		{Pattern: "GET /v1/workflows/{key}", Role: viewer, Handler: on(s, workflows.get)},
		{Pattern: "PUT /v1/workflows/{key}", Role: operator, Handler: on(s, workflows.putOne)},
		{Pattern: "DELETE /v1/workflows/{key}", Role: operator, Handler: on(s, workflows.delete)},
		{Pattern: "POST /v1/workflows/{key}/cancel", Role: operator, Handler: s.cancelWorkflow},
		{Pattern: "GET /v1/orders", Role: viewer, Handler: on(s, orders.list)},
		{Pattern: "GET /v1/orders/{key}", Role: viewer, Handler: on(s, orders.get)},
		{Pattern: "PUT /v1/orders/{key}", Role: operator, Handler: on(s, orders.putOne)},
		{Pattern: "DELETE /v1/orders/{key}", Role: operator, Handler: on(s, orders.delete)},
		{Pattern: "GET /v1/jobs", Role: viewer, Handler: on(s, jobs.list)},
		{Pattern: "GET /v1/jobs/{key}", Role: viewer, Handler: on(s, jobs.get)},
		{Pattern: "DELETE /v1/jobs/{key}", Role: operator, Handler: on(s, jobs.delete)},

		{Pattern: "GET /v1/traces/{trace_id}", Role: viewer, Handler: s.getTrace},
		{Pattern: "GET /v1/machines/{id}/trace", Role: viewer, Handler: s.machineTrace},
		{Pattern: "GET /v1/events", Role: viewer, Handler: s.listEvents},
		{Pattern: "GET /v1/events/stream", Role: viewer, Handler: s.streamEvents},
		{Pattern: "POST /v1/events", Role: operator, Handler: s.postEvent},

		{Pattern: "GET /v1/settings", Role: viewer, Handler: s.getSettings},
		{Pattern: "PUT /v1/settings", Role: admin, Handler: s.putSettings},

		// Tokens: the hash never shown, the secret once, on creation.
		{Pattern: "GET /v1/tokens", Role: admin, Handler: on(s, tokens.list)},
		{Pattern: "GET /v1/tokens/{key}", Role: admin, Handler: on(s, tokens.get)},
		{Pattern: "POST /v1/tokens", Role: admin, Handler: s.createToken},
		{Pattern: "DELETE /v1/tokens/{key}", Role: admin, Handler: on(s, tokens.delete)},

		// Joining hands over the site key.
		{Pattern: "GET /v1/cluster", Role: viewer, Handler: s.clusterStatus},
		{Pattern: "POST /v1/cluster/join", Role: admin, Handler: s.clusterJoin},
		{Pattern: "DELETE /v1/cluster/members/{id}", Role: admin, Handler: s.clusterRemove},
		{Pattern: "POST /v1/cluster/ca/rotate", Role: admin, Handler: s.clusterRotateCA},

		// The site's artifacts, and what each node holds of them.
		{Pattern: "GET /v1/artifacts", Role: viewer, Handler: s.listArtifacts},
		{Pattern: "GET /v1/artifacts/{sha256}", Role: viewer, Handler: s.getArtifact},

		// The link to central, as the leader recorded it, on any node.
		{Pattern: "GET /v1/sync", Role: viewer, Handler: s.syncStatus},

		{Pattern: "/", Role: viewer, Handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, errorBody{Error: &errs.Error{
				Code: errs.CodeNotFound, Message: "no route for " + r.Method + " " + r.URL.Path,
			}})
		}},
	}
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.cluster.Status()
	code := http.StatusOK
	if !st.Healthy {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"healthy": st.Healthy, "problem": st.Problem, "state": st.State})
}
