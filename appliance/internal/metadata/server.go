package metadata

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/clock"
)

// Config configures the metadata service.
type Config struct {
	// DB is the site store. The service only reads it: leases, machines,
	// workflows, subnets and the site settings.
	DB *store.DB
	// Key is the secret that signs IMDSv2 tokens: the site key's raw
	// bytes (at least 16). The service derives its own key from it, so a
	// token reveals nothing usable elsewhere.
	Key []byte
	// Log receives a line per answer (debug) and any store failure. Nil
	// discards.
	Log *slog.Logger
	// Now is the clock for lease expiry and tokens. Nil means time.Now.
	Now func() time.Time
	// Steps, if set, watches Now for forward steps (clock.StepGuard):
	// after one, a lease is judged as of before the step for its length,
	// and a token for the longest TTL, so a machine whose lease DHCP
	// still honours, or whose token's TTL has not run out, is not
	// turned away because the clock jumped. Nil: no guard.
	Steps *clock.StepGuard
	// Traces finds the trace a machine's requests belong to (its latest
	// workflow's): each request of a traced machine is a metadata.get
	// span. Nil makes one over DB.
	Traces *machinetrace.Index
}

// Server is the metadata service. Its Handler is safe for concurrent use.
type Server struct {
	db       *store.DB
	tokenKey []byte
	log      *slog.Logger
	now      func() time.Time
	steps    *clock.StepGuard
	traces   *machinetrace.Index
}

// New checks cfg and returns the service.
func New(cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, errors.New("metadata: Config.DB is required")
	}
	if len(cfg.Key) < 16 {
		return nil, fmt.Errorf("metadata: Config.Key is %d bytes, want at least 16", len(cfg.Key))
	}
	s := &Server{db: cfg.DB, log: cfg.Log, now: cfg.Now, steps: cfg.Steps}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.traces = cfg.Traces; s.traces == nil {
		s.traces = machinetrace.New(cfg.DB, machinetrace.Config{Now: s.now})
	}
	mac := hmac.New(sha256.New, cfg.Key)
	mac.Write([]byte("outpost metadata imdsv2 token key"))
	s.tokenKey = mac.Sum(nil)
	return s, nil
}

// ec2Versions are the EC2 API versions answered besides "latest": those
// cloud-init's Ec2 datasource asks for (it probes the newest, then falls
// back to 2009-04-04). They all answer the same.
var ec2Versions = []string{"2021-03-23", "2018-09-24", "2016-09-02", "2009-04-04"}

// Prefixes returns the path prefixes the handler answers under, for the
// caller to mount it on its mux with one mux.Handle(prefix, h) each: the
// EC2 view under /latest/ and the dated versions, /nocloud/ and /metadata/.
func Prefixes() []string {
	p := []string{"/latest/"}
	for _, v := range ec2Versions {
		p = append(p, "/"+v+"/")
	}
	return append(p, "/nocloud/", "/metadata/")
}

// A view writes one answer about the instance at the request's address.
type view func(w http.ResponseWriter, r *http.Request, in *instance)

// route is one entry of the route table.
type route struct {
	pattern string
	handler http.Handler
}

// routes lists every route of the service, in one table. EC2 routes have
// a {version} segment ("latest" or one of ec2Versions). A pattern ending
// in "/{$}" is a listing, also answered without the trailing slash, as
// Amazon does. GET patterns also match HEAD.
func (s *Server) routes() []route {
	v := s.answer
	region := func(in *instance) string { return in.site }
	return []route{
		{"PUT /latest/api/token", http.HandlerFunc(s.putToken)},

		{"GET /{version}/{$}", v(ec2Root)},
		{"GET /{version}/meta-data/{$}", v(metaDataIndex)},
		{"GET /{version}/meta-data/hostname", v(leaf((*instance).hostname))},
		{"GET /{version}/meta-data/local-hostname", v(leaf((*instance).hostname))},
		{"GET /{version}/meta-data/instance-id", v(leaf(func(in *instance) string { return in.machine.ID }))},
		{"GET /{version}/meta-data/local-ipv4", v(leaf(func(in *instance) string { return in.addr.String() }))},
		{"GET /{version}/meta-data/mac", v(leaf(func(in *instance) string { return in.mac }))},
		{"GET /{version}/meta-data/placement/{$}", v(listing("availability-zone", "region"))},
		{"GET /{version}/meta-data/placement/availability-zone", v(leaf((*instance).zone))},
		{"GET /{version}/meta-data/placement/region", v(leaf(region))},
		{"GET /{version}/meta-data/public-keys/{$}", v(publicKeys)},
		{"GET /{version}/meta-data/public-keys/{n}/{$}", v(publicKey)},
		{"GET /{version}/meta-data/public-keys/{n}/{field}", v(publicKey)},
		{"GET /{version}/meta-data/network/{$}", v(listing("interfaces/"))},
		{"GET /{version}/meta-data/network/interfaces/{$}", v(listing("macs/"))},
		{"GET /{version}/meta-data/network/interfaces/macs/{$}", v(macs)},
		{"GET /{version}/meta-data/network/interfaces/macs/{mac}/{$}", v(macField)},
		{"GET /{version}/meta-data/network/interfaces/macs/{mac}/{field}", v(macField)},
		{"GET /{version}/user-data", v(ec2UserData)},
		{"GET /{version}/dynamic/{$}", v(listing("instance-identity/"))},
		{"GET /{version}/dynamic/instance-identity/{$}", v(listing("document"))},
		{"GET /{version}/dynamic/instance-identity/document", v(identityDocument)},

		{"GET /nocloud/meta-data", v(nocloudMetaData)},
		{"GET /nocloud/user-data", v(nocloudUserData)},
		{"GET /nocloud/vendor-data", v(leaf(func(*instance) string { return "" }))},
		{"GET /nocloud/network-config", v(nocloudNetworkConfig)},

		{"GET /metadata/v1.json", v(jsonDocument)},
	}
}

// Handler returns the service's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, rt.handler)
		if dir, ok := strings.CutSuffix(rt.pattern, "/{$}"); ok {
			mux.Handle(dir, rt.handler)
		}
	}
	return mux
}

// answer checks the request's token, if any, finds the machine at its
// source address and has v answer about it.
func (s *Server) answer(v view) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ver := r.PathValue("version"); ver != "" && ver != "latest" && !slices.Contains(ec2Versions, ver) {
			http.NotFound(w, r)
			return
		}
		addr, err := sourceAddr(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start := time.Now()
		log := s.log.With("remote", addr, "path", r.URL.Path)
		if tok, ok := r.Header[tokenHeader]; ok {
			if err := s.checkToken(tok[0], addr); err != nil {
				log.Debug("metadata: token refused", "err", err)
				http.Error(w, "invalid or expired token", http.StatusUnauthorized)
				return
			}
		}
		in, err := s.lookup(addr)
		if err != nil {
			log.Error("metadata: store", "err", err)
			http.Error(w, "metadata unavailable", http.StatusInternalServerError)
			return
		}
		if in == nil {
			log.Debug("metadata: no machine")
			http.Error(w, "no machine has address "+addr.String(), http.StatusNotFound)
			return
		}
		log.Debug("metadata", "machine", in.machine.ID)
		w.Header().Set("Cache-Control", "no-store")
		if in.trace.Traced() {
			w, r = s.startSpan(w, r, in, start)
			defer endSpan(w)
		}
		v(w, r, in)
	})
}

// sourceAddr is the request's source IP address, from the connection.
func sourceAddr(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cannot tell the source address %q", r.RemoteAddr)
	}
	return ap.Addr().Unmap(), nil
}

// leaf is a view answering the text f returns.
func leaf(f func(*instance) string) view {
	return func(w http.ResponseWriter, _ *http.Request, in *instance) { writeText(w, f(in)) }
}

// listing is a view answering fixed lines.
func listing(lines ...string) view {
	return func(w http.ResponseWriter, _ *http.Request, _ *instance) { writeLines(w, lines) }
}

func writeText(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, s)
}

// writeLines writes an EC2 listing: newline-separated, with no newline at
// the end, as Amazon's.
func writeLines(w http.ResponseWriter, lines []string) {
	writeText(w, strings.Join(lines, "\n"))
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Write(append(b, '\n'))
}

func writeYAML(w http.ResponseWriter, v any) {
	b, err := yaml.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/yaml; charset=utf-8")
	w.Write(b)
}
