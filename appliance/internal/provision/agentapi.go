package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/ratelog"
	"github.com/outposthq/outpost/internal/tracing"
)

// Site is what the agent API needs of its site: linearizable reads, and
// the proposals that record reports, discoveries and claims (package
// site's proposer, through the app).
type Site interface {
	// Linearize waits until the local store reflects every write
	// committed before the call.
	Linearize(ctx context.Context) error
	Report(ctx context.Context, workflowID string, r site.Report) (*store.Workflow, error)
	Discover(ctx context.Context, hw site.Hardware) (*site.DiscoverResult, error)
	BindWorkflow(ctx context.Context, workflowID string, addr netip.Addr) (*store.Workflow, error)
}

// Config configures the agent API.
type Config struct {
	Site Site
	// Store is this node's store, which workflows are read from.
	Store       *store.DB
	Credentials *Credentials
	// Binding ties credentials to their machine's address: BindLease
	// where this appliance's DHCP server leases the boot network's
	// addresses, BindFirstClaim where it leases none.
	Binding Binding
	// DiscoveryBurst and DiscoveryEvery limit the machines discovery
	// creates, per subnet of the reporting address: burst at once, then
	// one every DiscoveryEvery; a report over the limit is answered 429
	// and the agent retries it. Zero means DefaultDiscoveryBurst and
	// DefaultDiscoveryEvery. Each appliance of a site limits what it
	// receives.
	DiscoveryBurst int
	DiscoveryEvery time.Duration
	// Spans keeps the spans agents send (agentproto.PathSpans): this
	// node's span store (a *tracing.Store). Nil (or a nil store): the
	// agent API answers them 404, and agents drop them.
	Spans SpanKeeper
	// Log receives a line per failure, and per refused request at debug
	// level (with a warning at most once a minute per source); nil
	// discards.
	// Credentials are never logged.
	Log *slog.Logger
	// Now is the clock the agent's view of its workflow, lease expiry and
	// credential expiry are computed at; time.Now if nil.
	Now func() time.Time
}

// Server is the agent API.
type Server struct {
	site    Site
	db      *store.DB
	creds   *Credentials
	binding Binding
	limit   *subnetLimiter
	spans   SpanKeeper
	log     *slog.Logger
	now     func() time.Time
	// refusals logs refused requests at warning level, a line per source
	// per minute: anyone on the boot network can send them at will.
	// outpost_agent_refused_total counts every one, by reason.
	refusals *ratelog.Log
}

// New returns the agent API.
func New(cfg Config) *Server {
	s := &Server{site: cfg.Site, db: cfg.Store, creds: cfg.Credentials, binding: cfg.Binding, spans: cfg.Spans, log: cfg.Log, now: cfg.Now,
		limit: newSubnetLimiter(cfg.DiscoveryBurst, cfg.DiscoveryEvery)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if st, ok := s.spans.(*tracing.Store); ok && st == nil {
		s.spans = nil // a nil store is none
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.refusals = ratelog.New(ratelog.Config{Log: s.log, Level: slog.LevelWarn, Message: "agent requests refused from this source (a line a minute; outpost_agent_refused_total counts them)"})
	return s
}

// Prefix is the path prefix of every agent API route.
const Prefix = "/agent/"

// Handler serves the agent API's routes (under Prefix).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentproto.PathWorkflow, s.getWorkflow)
	mux.HandleFunc("POST "+agentproto.PathReport, s.postReport)
	mux.HandleFunc("POST "+agentproto.PathHardware, s.postHardware)
	mux.HandleFunc("POST "+agentproto.PathSpans, s.postSpans)
	return mux
}

// maxBody bounds request bodies: a hardware report of a large server is
// a few KiB.
const maxBody = 1 << 20

// apiError is an answer other than 200. reason, for a refusal, is the
// label it is counted under.
type apiError struct {
	status int
	code   string
	field  string
	msg    string
	reason string
}

func (e *apiError) Error() string { return e.msg }

// refusal is a refused request: 401 unless status says otherwise.
func refusal(reason string, err error) *apiError {
	ae := &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: err.Error(), reason: reason}
	switch reason {
	case reasonAddress, reasonTrace:
		ae.status, ae.code = http.StatusForbidden, "forbidden"
	case reasonRateLimited:
		ae.status, ae.code = http.StatusTooManyRequests, "rate_limited"
	}
	return ae
}

func unauthorized() *apiError { return refusal(reasonCredential, errCredential) }

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = s.classify(r, err)
	}
	var body agentproto.Error
	body.Error.Code, body.Error.Message, body.Error.Field = ae.code, ae.msg, ae.field
	switch ae.status {
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", httpapi.RetryAfter)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(s.limit.every.Seconds()))))
	}
	if ae.reason != "" {
		refused.WithLabelValues(ae.reason).Inc()
		s.log.Debug("agent request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "reason", ae.reason)
		s.refusals.Record(r.Context(), httpserve.Source(r.RemoteAddr), slog.String("path", r.URL.Path),
			slog.Int("status", ae.status), slog.String("reason", ae.reason))
	} else {
		s.log.Warn("agent request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", ae.status, "err", ae.msg)
	}
	writeJSON(w, ae.status, body)
}

// classify maps a domain or cluster error to an answer; anything else is
// logged and answered with a generic 500 (which the agent retries).
func (s *Server) classify(r *http.Request, err error) *apiError {
	if e, ok := errs.AsError(err); ok {
		switch e.Code {
		case errs.CodeInvalid:
			return &apiError{status: http.StatusBadRequest, code: e.Code, field: e.Field, msg: e.Message}
		case errs.CodeConflict:
			return &apiError{status: http.StatusConflict, code: e.Code, msg: e.Message}
		case errs.CodeNotFound:
			return &apiError{status: http.StatusNotFound, code: e.Code, msg: e.Message}
		}
	}
	if errors.Is(err, site.ErrNoLeader) || errors.Is(err, site.ErrUnknownOutcome) || errors.Is(err, context.DeadlineExceeded) {
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the appliance cluster has no leader; retry"}
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		s.log.Error("agent request not stored: the disk is full", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
		return &apiError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "the appliance's disk is full; retry"}
	}
	s.log.Error("agent request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	return &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal error; see the appliance log"}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// getWorkflow serves GET PathWorkflow. The read is linearizable: it
// reflects every report acknowledged before it.
func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	c, err := s.authenticate(r)
	if err == nil {
		err = s.site.Linearize(r.Context())
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	wf, err := s.authorize(r.Context(), c)
	switch {
	case err != nil:
		s.writeError(w, r, err)
	case wf == nil:
		s.writeError(w, r, &apiError{status: http.StatusNotFound, code: errs.CodeNotFound, msg: "no workflow for this machine yet"})
	default:
		writeJSON(w, http.StatusOK, agentView(wf, s.now()))
	}
}

// postReport serves POST PathReport. The body is read once the credential
// is verified, and the report recorded once the body is good and the
// workflow admits the caller.
func (s *Server) postReport(w http.ResponseWriter, r *http.Request) {
	var rep agentproto.Report
	wf, ok := s.admitWorkflow(w, r, func(r *http.Request) error { return decode(r, &rep) })
	if !ok {
		return
	}
	stored, err := s.site.Report(r.Context(), wf.ID, site.Report(rep))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, agentView(stored, s.now()))
}

// postHardware serves POST PathHardware: discovery credentials only, for
// the MAC they name, within the limit on new machines per subnet.
func (s *Server) postHardware(w http.ResponseWriter, r *http.Request) {
	var hw agentproto.Hardware
	c, err := s.authenticate(r)
	if err == nil && c.disc == nil {
		err = unauthorized()
	}
	if err == nil {
		err = decode(r, &hw)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mac := c.disc.mac
	if got, err := store.NormalizeMAC(hw.MAC); err != nil || got != mac {
		s.writeError(w, r, &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, field: "mac",
			msg: fmt.Sprintf("%q is not the MAC this credential was issued for", hw.MAC)})
		return
	}
	if err := s.limitCreation(mac, c.addr); err != nil {
		s.writeError(w, r, err)
		return
	}
	got, err := s.site.Discover(r.Context(), siteHardware(hw))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("discovery", "machine", got.MachineID, "mac", mac, "created", got.Created, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, agentproto.HardwareAck{MachineID: got.MachineID, Created: got.Created})
}

// limitCreation refuses a report that would create a machine for mac when
// addr's subnet is over its limit. Reports on known machines are not
// limited.
func (s *Server) limitCreation(mac string, addr netip.Addr) error {
	var subnet string
	err := s.db.View(func(tx *store.Tx) error {
		_, err := tx.MachineByMAC(mac)
		if !errors.Is(err, errs.ErrNotFound) {
			return err
		}
		subnet, err = subnetOf(tx, addr)
		return err
	})
	if err != nil || subnet == "" || s.limit.allow(subnet, s.now()) {
		return err
	}
	return refusal(reasonRateLimited, fmt.Errorf("machines are being discovered in %s faster than the limit "+
		"(%d at once, then one every %s): retry later", subnet, s.limit.burst, s.limit.every))
}

// siteHardware is hw as the site's log records it.
func siteHardware(hw agentproto.Hardware) site.Hardware {
	out := site.Hardware{MAC: hw.MAC, Vendor: hw.Vendor, Product: hw.Product, Serial: hw.Serial,
		CPUs: hw.CPUs, CPUModel: hw.CPUModel, MemoryBytes: hw.MemoryBytes}
	for _, d := range hw.Disks {
		out.Disks = append(out.Disks, site.Disk(d))
	}
	for _, n := range hw.NICs {
		out.NICs = append(out.NICs, site.NIC(n))
	}
	return out
}

// decode reads a JSON body strictly.
func decode(r *http.Request, v any) error {
	if err := store.DecodeStrict(io.LimitReader(r.Body, maxBody), v); err != nil {
		return &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, msg: "body: " + err.Error()}
	}
	return nil
}

// agentView is what the agent sees of workflow w at now.
func agentView(w *store.Workflow, now time.Time) agentproto.Workflow {
	st := *w.State
	out := agentproto.Workflow{
		ID: w.ID, MachineID: w.MachineID, Status: string(st.Status), Reason: st.Reason,
		Ready: workflow.Ready(st, now), Traceparent: w.Traceparent,
	}
	if out.Ready == nil {
		out.Ready = []string{}
	}
	var wake time.Time
	for _, a := range st.Plan.Actions() {
		as, _ := st.Action(a.Name)
		out.Actions = append(out.Actions, agentproto.Action{
			Name: a.Name, Type: a.Type, Args: a.Args, Status: string(as.Status), Attempt: as.Attempt,
			Timeout: a.Timeout.Seconds(),
		})
		if as.Status == workflow.Pending && as.NotBefore.After(now) && (wake.IsZero() || as.NotBefore.Before(wake)) {
			wake = as.NotBefore
		}
	}
	if !wake.IsZero() {
		out.Poll = wake.Sub(now).Seconds()
	}
	return out
}

// admitWorkflow admits a workflow credential's POST: the credential is
// verified before read reads the body, and the workflow must admit the
// caller. It answers the error itself and returns false if not.
func (s *Server) admitWorkflow(w http.ResponseWriter, r *http.Request, read func(*http.Request) error) (*store.Workflow, bool) {
	c, err := s.authenticate(r)
	if err == nil {
		err = read(r)
	}
	if err != nil {
		s.writeError(w, r, err)
		return nil, false
	}
	wf, err := s.authorize(r.Context(), c)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return nil, false
	case wf == nil:
		s.writeError(w, r, &apiError{status: http.StatusNotFound, code: errs.CodeNotFound, msg: "no workflow for this machine"})
		return nil, false
	}
	return wf, true
}
