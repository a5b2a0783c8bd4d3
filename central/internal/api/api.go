// Package api serves central's HTTP/JSON API for the operator and the
// portal: sites (creating one yields its credential, shown once) with
// their sync status, each site's orders, machines, images and templates
// (its desired state: every change is a new revision, pushed to the site
// by package hub), and the events the site sent (a page since a
// sequence, and a live Server-Sent Events stream).
//
// Every route but /healthz needs an admin token (Authorization: Bearer).
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

	"github.com/outposthq/outpost/central/internal/hub"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Config configures the API.
type Config struct {
	Store *store.DB
	// Hub reports sites' connections; nil shows every site offline.
	Hub interface{ Status(site string) hub.Status }
	// Cluster is the node of a replicated central; nil for a single one.
	Cluster Cluster
	Log     *slog.Logger
}

// Server is the API.
type Server struct {
	db      *store.DB
	hub     interface{ Status(site string) hub.Status }
	cluster Cluster
	log     *slog.Logger
}

// New returns the API server.
func New(cfg Config) *Server {
	s := &Server{db: cfg.Store, hub: cfg.Hub, cluster: cfg.Cluster, log: cfg.Log}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	authed := http.NewServeMux()
	s.routes(authed)
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteJSON(w, http.StatusOK, map[string]bool{"healthy": true})
	})
	root.Handle("/", s.requireToken(authed))
	return root
}

// routes lists every authenticated route, in one table.
func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/sites", s.createSite)
	mux.HandleFunc("GET /v1/sites", s.listSites)
	mux.HandleFunc("GET /v1/sites/{site}", s.getSite)

	mux.HandleFunc("PUT /v1/sites/{site}/orders/{key}", s.putOrder)
	mux.HandleFunc("GET /v1/sites/{site}/orders/{key}", s.getItem(store.KindOrder))
	mux.HandleFunc("GET /v1/sites/{site}/orders", s.listItems(store.KindOrder, "orders"))
	for path, kind := range map[string]string{"machines": store.KindMachine, "images": store.KindImage, "templates": store.KindTemplate} {
		mux.HandleFunc("PUT /v1/sites/{site}/"+path+"/{key}", s.putItem(kind))
		mux.HandleFunc("DELETE /v1/sites/{site}/"+path+"/{key}", s.deleteItem(kind))
		mux.HandleFunc("GET /v1/sites/{site}/"+path+"/{key}", s.getItem(kind))
		mux.HandleFunc("GET /v1/sites/{site}/"+path, s.listItems(kind, path))
	}

	mux.HandleFunc("GET /v1/sites/{site}/events", s.listEvents)
	mux.HandleFunc("GET /v1/sites/{site}/events/stream", s.streamEvents)
	mux.HandleFunc("DELETE /v1/sites/{site}/events", s.resetEvents)

	s.clusterRoutes(mux)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, &errs.Error{Code: errs.CodeNotFound, Message: "no route for " + r.Method + " " + r.URL.Path})
	})
}

// requireToken answers 401 unless the request carries a valid token.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := httpapi.Bearer(r); tok == "" || !s.db.CheckToken(tok) {
			httpapi.Unauthorized(w, "outpost central")
			return
		}
		next.ServeHTTP(w, r)
	})
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
