package httpboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path"
	"text/template"
	"time"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/provision"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
)

// Config configures the boot HTTP service.
type Config struct {
	// DB is the site store. The service reads it: the machine by MAC,
	// its workflow and lease, the installer image and the site settings.
	DB *store.DB
	// ArtifactDir is the directory served under /artifacts/: kernels,
	// initrds, iPXE binaries and OS images, with optional "<name>.sha256"
	// sidecar files. It must exist. Installer images name their kernel and
	// initrd relative to it.
	ArtifactDir string
	// Credentials mints the agent credential an installer is booted with.
	Credentials Credentials
	// Binding says which address may get a machine's credential
	// (package provision): BindLease where this appliance's DHCP server
	// leases the boot network's addresses, BindFirstClaim where it leases
	// none, which needs Binder.
	Binding provision.Binding
	// Binder records the first address to claim a workflow's credential
	// under BindFirstClaim (package site's proposer, through the app).
	Binder Binder
	// DiscoveryTTL is how long a discovery credential opens anything
	// after its script was served; 0 means DefaultDiscoveryTTL.
	DiscoveryTTL time.Duration
	// Log receives one line per script served and any failure. Nil
	// discards. Credentials are never logged.
	Log *slog.Logger
	// Now is the clock of lease expiry and discovery credentials;
	// time.Now if nil.
	Now func() time.Time
	// Artifacts is this node's store of content-addressed artifacts,
	// served at /artifacts/sha256/<hex>; nil holds none.
	Artifacts *artifact.Store
	// Peers finds the other nodes that hold an artifact this one does
	// not, to stream it from them; nil asks none.
	Peers Peers
	// Traces finds the trace a machine's fetches belong to (its latest
	// workflow's): each fetch of a traced machine is a boot.fetch span.
	// Nil makes one over DB.
	Traces *machinetrace.Index
}

// DefaultDiscoveryTTL is how long a discovery credential lasts by
// default: long enough for an operator to look at a discovered machine
// and give it a workflow while its installer waits; after that, the
// machine must boot again for a new credential.
const DefaultDiscoveryTTL = time.Hour

// Credentials mints agent credentials (package provision implements it).
type Credentials interface {
	Workflow(w *store.Workflow) string
	Discovery(mac string, addr netip.Addr, expires time.Time) string
}

// Binder claims a workflow's credential for an address (package site's
// proposer implements it): it returns the workflow as stored, bound to
// addr or to the address that claimed it first.
type Binder interface {
	BindWorkflow(ctx context.Context, workflowID string, addr netip.Addr) (*store.Workflow, error)
}

// Server is the boot HTTP service. Its Handler is safe for concurrent use.
type Server struct {
	db      *store.DB
	creds   Credentials
	binding provision.Binding
	binder  Binder
	ttl     time.Duration
	root    *os.Root
	log     *slog.Logger
	now     func() time.Time
	scripts *template.Template
	store   *artifact.Store
	peers   Peers
	// peerAnswer bounds the wait for a peer's answer (peerAnswer; tests
	// shorten it).
	peerAnswer time.Duration
	traces     *machinetrace.Index
}

// New checks cfg and opens ArtifactDir. Close releases the directory.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, errors.New("httpboot: Config.DB is required")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("httpboot: Config.Credentials is required")
	}
	if cfg.Binding == provision.BindFirstClaim && cfg.Binder == nil {
		return nil, errors.New("httpboot: Config.Binder is required with BindFirstClaim")
	}
	if cfg.ArtifactDir == "" {
		return nil, errors.New("httpboot: Config.ArtifactDir is required")
	}
	root, err := os.OpenRoot(cfg.ArtifactDir)
	if err != nil {
		return nil, fmt.Errorf("httpboot: artifact dir: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{db: cfg.DB, creds: cfg.Credentials, binding: cfg.Binding, binder: cfg.Binder, ttl: cfg.DiscoveryTTL,
		root: root, log: log, now: cfg.Now, scripts: scriptTemplates, store: cfg.Artifacts, peers: cfg.Peers, peerAnswer: peerAnswer}
	if s.ttl <= 0 {
		s.ttl = DefaultDiscoveryTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.traces = cfg.Traces; s.traces == nil {
		s.traces = machinetrace.New(cfg.DB, machinetrace.Config{Now: s.now})
	}
	return s, nil
}

// Close releases ArtifactDir. Requests for artifacts after Close fail with
// 404. It is safe to call more than once.
func (s *Server) Close() error {
	return s.root.Close()
}

// route is one entry of the route table.
type route struct {
	pattern string
	handler http.HandlerFunc
	// boot says what the route serves, for a traced machine's span
	// (bootScript, bootArtifact); "" for none.
	boot string
}

// routes lists every route the service has, in one table. GET patterns
// also match HEAD; other methods get 405, other paths 404.
func (s *Server) routes() []route {
	return []route{
		{"GET /ipxe/boot.ipxe", s.serveBootScript, bootScript},
		{"GET /ipxe/{file}", s.serveMACScript, bootScript}, // {mac}.ipxe
		{"GET /artifacts/sha256/{hex}", s.serveDigest, bootArtifact},
		{"GET /artifacts/{name...}", s.serveArtifact, bootArtifact},
		{"GET /healthz", s.serveHealth, ""},
	}
}

// Handler returns the service's routes. Requests whose path is not in
// clean form ("..", ".", "//") are refused with 404 before routing, rather
// than redirected: firmware never sends them.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, s.traced(rt.boot, rt.handler))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "" || p[0] != '/' || path.Clean(p) != p {
			notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok")
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "not found", http.StatusNotFound)
}
