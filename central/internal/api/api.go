// Package api serves central's HTTP/JSON API for the operator and the
// portal: sites (creating one yields its credential, shown once) with
// their sync status, each site's orders, machines, images and templates
// (its desired state: every change is a new revision, pushed to the site
// by package hub), the events the site sent (a page since a sequence,
// and a live Server-Sent Events stream), and the catalogue of artifacts
// (artifacts.go: uploads streamed to this node's store and checked
// against their sha256, upstream URLs registered, downloads with Range),
// sites' labels, and the catalogue of images (catalogue.go: a name that
// points at a content-addressed image, placed by central into the
// desired state of every site it lists or whose labels match), and the
// fleet model (fleet.go: every site's machines as their events say,
// searched with machinequery's fleet grammar; the sites' links and
// reports; the overview; a stream of its versions), and the traces of
// orders (traces.go: a trace's spans with its provision's waterfall, by
// its id or a machine's last order's).
//
// A site pulls the artifacts its desired images name from
// SitePullPattern (sitepull.go), with its own credential rather than a
// token; the bytes sent are counted per site. The routes that upload or
// serve bytes, and /metrics, are served by the node asked, every other by
// the leader (Local tells the app which).
//
// Orders for many machines at once (orders.go: POST /v1/orders/preview
// shows what a request would do, POST /v1/orders places it, one batch of
// orders under one key prefix) and one order (PUT of a site's order)
// resolve an image's name to the digest the site is given under it.
// Every request that may change something is recorded in the audit,
// done or refused (audit.go; GET /v1/audit, an operator's read).
// Annotations (annotations.go) are incidents and faults an operator or
// a tool records against the fleet or a site, which the portal's charts
// mark over the provisions of their window.
//
// Every route but /healthz needs a token (Authorization: Bearer) whose
// role allows it: one route table (routes) names each route's role, a
// viewer's for reads, an operator's for desired state, an admin's for
// tokens, sites (creating one hands out its credential), the cluster and
// resetting a site's events. Each revision of desired state records the
// name of the token that made it.
// Errors are JSON, {"error":{"code":..,"field":..,"message":..}}, with
// the HTTP status of the code; a request that fails changes nothing.
// Credentials, tokens and request bodies are never logged.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/central/fleet"
	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/orders"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/tracing"
)

// Config configures the API.
type Config struct {
	Store *store.DB
	// Hub reports sites' connections; nil shows every site offline.
	Hub interface{ Status(site string) hub.Status }
	// Cluster is the node of a replicated central; nil for a single one.
	Cluster Cluster
	// Now is the clock tokens expire by; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// APICA is central's API CA certificate (PEM) and fingerprint,
	// served by GET /v1/ca to anyone; empty answers 404.
	APICA, APICAFingerprint string
	// Artifacts is this node's artifact store (*artifacts.Node); nil
	// answers the routes that upload or serve bytes 503.
	Artifacts Artifacts
	// Metrics, if set, is served at GET /metrics to anyone: this node's.
	Metrics prometheus.Gatherer
	// Fleet is the fleet model's reader; nil means the store's
	// (Store.Fleet()).
	Fleet fleet.Reader
}

// Server is the API.
type Server struct {
	db      *store.DB
	hub     interface{ Status(site string) hub.Status }
	cluster Cluster
	now     func() time.Time
	log     *slog.Logger

	caPEM         []byte
	caFingerprint string
	artifacts     Artifacts
	metrics       prometheus.Gatherer
	orders        *orders.Service
	fleet         fleet.Reader
}

// New returns the API server.
func New(cfg Config) *Server {
	s := &Server{db: cfg.Store, hub: cfg.Hub, cluster: cfg.Cluster, now: cfg.Now, log: cfg.Log,
		caPEM: []byte(cfg.APICA), caFingerprint: cfg.APICAFingerprint, artifacts: cfg.Artifacts, metrics: cfg.Metrics, fleet: cfg.Fleet}
	if s.fleet == nil && s.db != nil {
		s.fleet = s.db.Fleet()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.orders = orders.New(orders.Config{Store: cfg.Store, Fleet: s.fleet, Now: s.now})
	return s
}

// Orders is the API's order placer and audit reader, for the portal.
func (s *Server) Orders() *orders.Service { return s.orders }

// Handler returns the API's routes: /healthz, /metrics and /v1/ca for
// anyone, a site's pull of its artifacts for the site (SitePullPattern,
// with its credential), every other route for the holders of a token
// whose role allows it (routes).
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	routes := s.routes()
	for i := range routes {
		routes[i].Handler = spanNamed(routes[i])
	}
	httpapi.Register(authed, routes)
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"healthy": true})
	})
	root.HandleFunc("GET "+httpapi.CAPath, httpapi.ServeCA(s.caPEM, s.caFingerprint))
	if s.metrics != nil {
		root.Handle("GET /metrics", promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{}))
	}
	root.HandleFunc(SitePullPattern, s.sitePull)
	// Each request a token opens that changes something, or whose caller
	// traces it (tracing.TraceRequest), is a span, named by its route
	// once routed ("POST /v1/orders").
	traced := otelhttp.NewHandler(s.audited(authed), "central.api", otelhttp.WithSpanNameFormatter(routeName),
		otelhttp.WithFilter(tracing.TraceRequest))
	root.Handle("/", httpapi.Authenticate("outpost central", s.db.LookupToken, s.now, unrouted(traced)))
	return root
}

// routeName names a request's span by the route that serves it, or by
// its method alone before it is routed.
func routeName(_ string, r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method
}

// unrouted hands next the request without the pattern root's mux
// matched ("/"), which otelhttp would name its span by.
func unrouted(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(r.Context())
		r.Pattern = ""
		next.ServeHTTP(w, r)
	})
}

// spanNamed names the request's span by rt's pattern as rt's handler
// starts: the request otelhttp sees is not always the one the routes'
// mux matched (audited copies it to carry its note).
func spanNamed(rt httpapi.Route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		trace.SpanFromContext(r.Context()).SetName(rt.Pattern)
		rt.Handler(w, r)
	}
}

// routes lists every route a token opens, with the least role that may
// use it, in one table. A route is served only through this table
// (httpapi.Register).
func (s *Server) routes() []httpapi.Route {
	const viewer, operator, admin = access.Viewer, access.Operator, access.Admin
	site := "/v1/sites/{site}"
	return []httpapi.Route{
		{Pattern: "POST /v1/sites", Role: admin, Handler: s.createSite}, // answers the site's credential
		{Pattern: "GET /v1/sites", Role: viewer, Handler: s.listSites},
		{Pattern: "GET " + site, Role: viewer, Handler: s.getSite},
		// Labels decide which of the catalogue's images a site holds: an
		// operator's, as placing an image on a site is; they hand out no
		// credential, so they need no admin.
		{Pattern: "PUT " + site + "/labels", Role: operator, Handler: s.setSiteLabels},

		{Pattern: "PUT " + site + "/orders/{key}", Role: operator, Handler: s.putOrder},
		// The site deletes an order once it has ended; a running one's
		// delete is refused there (a sync.order_refused event).
		{Pattern: "DELETE " + site + "/orders/{key}", Role: operator, Handler: s.deleteItem(store.KindOrder)},
		{Pattern: "GET " + site + "/orders/{key}", Role: viewer, Handler: s.getItem(store.KindOrder)},
		{Pattern: "GET " + site + "/orders", Role: viewer, Handler: s.listItems(store.KindOrder, "orders")},
		{Pattern: "PUT " + site + "/machines/{key}", Role: operator, Handler: s.putItem(store.KindMachine)},
		{Pattern: "DELETE " + site + "/machines/{key}", Role: operator, Handler: s.deleteItem(store.KindMachine)},
		{Pattern: "GET " + site + "/machines/{key}", Role: viewer, Handler: s.getItem(store.KindMachine)},
		{Pattern: "GET " + site + "/machines", Role: viewer, Handler: s.listItems(store.KindMachine, "machines")},
		{Pattern: "PUT " + site + "/images/{key}", Role: operator, Handler: s.putItem(store.KindImage)},
		{Pattern: "DELETE " + site + "/images/{key}", Role: operator, Handler: s.deleteItem(store.KindImage)},
		{Pattern: "GET " + site + "/images/{key}", Role: viewer, Handler: s.getItem(store.KindImage)},
		{Pattern: "GET " + site + "/images", Role: viewer, Handler: s.listItems(store.KindImage, "images")},
		{Pattern: "PUT " + site + "/templates/{key}", Role: operator, Handler: s.putItem(store.KindTemplate)},
		{Pattern: "DELETE " + site + "/templates/{key}", Role: operator, Handler: s.deleteItem(store.KindTemplate)},
		{Pattern: "GET " + site + "/templates/{key}", Role: viewer, Handler: s.getItem(store.KindTemplate)},
		{Pattern: "GET " + site + "/templates", Role: viewer, Handler: s.listItems(store.KindTemplate, "templates")},
		{Pattern: "GET " + site + "/revisions", Role: viewer, Handler: s.listRevisions},

		{Pattern: "GET " + site + "/events", Role: viewer, Handler: s.listEvents},
		{Pattern: "GET " + site + "/events/stream", Role: viewer, Handler: s.streamEvents},
		{Pattern: "DELETE " + site + "/events", Role: admin, Handler: s.resetEvents}, // forgets history

		{Pattern: "POST /v1/artifacts", Role: operator, Handler: s.uploadArtifact}, // the body is the bytes
		{Pattern: "POST /v1/artifacts/register", Role: operator, Handler: s.registerArtifact},
		{Pattern: "GET /v1/artifacts", Role: viewer, Handler: s.listArtifacts},
		{Pattern: "GET /v1/artifacts/{sha256}", Role: viewer, Handler: s.getArtifact},
		{Pattern: "GET /v1/artifacts/{sha256}/content", Role: viewer, Handler: s.artifactContent},
		{Pattern: "DELETE /v1/artifacts/{sha256}", Role: operator, Handler: s.deleteArtifact},

		// The catalogue of images: a name pointing at a content-addressed
		// image, placed on sites by id and by label (desired state).
		{Pattern: "PUT /v1/images/{name}", Role: operator, Handler: s.putCatalogueImage},
		{Pattern: "GET /v1/images", Role: viewer, Handler: s.listCatalogue},
		{Pattern: "GET /v1/images/{name}", Role: viewer, Handler: s.getCatalogueImage},
		{Pattern: "DELETE /v1/images/{name}", Role: operator, Handler: s.deleteCatalogueImage},

		// Orders for many machines of many sites at once, previewed
		// first (orders.go); the audit of every change (audit.go).
		{Pattern: "POST /v1/orders/preview", Role: operator, Handler: s.previewOrders},
		{Pattern: "POST /v1/orders", Role: operator, Handler: s.placeOrders},
		{Pattern: "GET /v1/audit", Role: operator, Handler: s.listAudit},
		// Incidents and faults the charts mark (annotations.go).
		{Pattern: "POST /v1/annotations", Role: operator, Handler: s.addAnnotation},
		{Pattern: "GET /v1/annotations", Role: viewer, Handler: s.listAnnotations},

		{Pattern: "GET /v1/tokens", Role: admin, Handler: s.listTokens},
		{Pattern: "GET /v1/tokens/{id}", Role: admin, Handler: s.getToken},
		{Pattern: "POST /v1/tokens", Role: admin, Handler: s.createToken},
		{Pattern: "DELETE /v1/tokens/{id}", Role: admin, Handler: s.deleteToken},

		// The fleet model: every site's machines with their derived
		// state, the sites' links and reports, the overview, a stream of
		// its versions (fleet.go).
		{Pattern: "GET /v1/fleet/machines", Role: viewer, Handler: s.fleetMachines},
		{Pattern: "GET /v1/fleet/machines/{site}/{id}", Role: viewer, Handler: s.fleetMachine},
		{Pattern: "GET /v1/fleet/machines/{site}/{id}/timeline", Role: viewer, Handler: s.fleetTimeline},
		{Pattern: "GET /v1/fleet/machines/{site}/{id}/trace", Role: viewer, Handler: s.machineTrace},
		{Pattern: "GET /v1/traces/{trace_id}", Role: viewer, Handler: s.getTrace},
		{Pattern: "GET /v1/fleet/sites", Role: viewer, Handler: s.fleetSites},
		{Pattern: "GET /v1/fleet/summary", Role: viewer, Handler: s.fleetSummary},
		{Pattern: "GET /v1/fleet/stream", Role: viewer, Handler: s.fleetStream},

		{Pattern: "GET /v1/cluster", Role: viewer, Handler: s.clusterStatus},
		{Pattern: "POST /v1/cluster/key", Role: admin, Handler: s.clusterKey}, // hands over central's key
		{Pattern: "POST /v1/cluster/members", Role: admin, Handler: s.clusterAdd},
		{Pattern: "DELETE /v1/cluster/members/{id}", Role: admin, Handler: s.clusterRemove},
		{Pattern: "POST /v1/cluster/ca/rotate", Role: admin, Handler: s.clusterRotateCA},

		{Pattern: "/", Role: viewer, Handler: func(w http.ResponseWriter, r *http.Request) {
			httpapi.WriteError(w, &errs.Error{Code: errs.CodeNotFound, Message: "no route for " + r.Method + " " + r.URL.Path})
		}},
	}
}

// writeError answers with err: a domain error as it is; a write the
// store could not take (no leader, a full disk) 503 with Retry-After;
// anything else logged and answered with a generic message.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e, ok := errs.AsError(err)
	switch {
	case ok:
	case isUnavailable(err):
		// A replicated central lost its leader under this request.
		s.log.Warn("request not applied", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &errs.Error{Code: httpapi.CodeUnavailable, Message: "central's leader changed during the request; it may not have been applied: retry it"}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		s.log.Error("request not stored: the disk is full", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &errs.Error{Code: httpapi.CodeUnavailable, Message: "central's disk is full: nothing was written; retry once space is freed"}
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &errs.Error{Code: httpapi.CodeInternal, Message: "internal error; see central's log"}
	}
	httpapi.WriteError(w, e)
}

// maxBody bounds a request body: an object of the largest size the
// protocol carries, with room.
const maxBody = 2 << 20

// decodeBody decodes the JSON body into v, naming the field at fault. A
// body over maxBody is refused whole (413), as is one that is empty or
// null.
func decodeBody(r *http.Request, v any, strict bool) error {
	raw, err := httpapi.ReadBody(r, maxBody)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if strict {
		dec.DisallowUnknownFields()
	}
	err = dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		if dec.More() {
			return errs.Invalid("body", "holds more than one JSON value")
		}
		return nil
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return errs.Invalid(typeErr.Field, "has the wrong JSON type")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errs.Invalid(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "is not a known field")
	}
	return errs.Invalid("body", "is not valid JSON")
}
