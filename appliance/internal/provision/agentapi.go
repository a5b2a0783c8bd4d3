package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
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
)

// Site is what the agent API needs of its site: linearizable reads, and
// the proposals that record reports and discoveries (package site's
// proposer, through the app).
type Site interface {
	// Linearize waits until the local store reflects every write
	// committed before the call.
	Linearize(ctx context.Context) error
	Report(ctx context.Context, workflowID string, r site.Report) (*store.Workflow, error)
	Discover(ctx context.Context, hw site.Hardware) (*site.DiscoverResult, error)
}

// Config configures the agent API.
type Config struct {
	Site Site
	// Store is this node's store, which workflows are read from.
	Store       *store.DB
	Credentials *Credentials
	// Log receives a line per refused request and per failure; nil
	// discards. Credentials are never logged.
	Log *slog.Logger
	// Now is the clock the agent's view of its workflow is computed
	// at; time.Now if nil.
	Now func() time.Time
}

// Server is the agent API.
type Server struct {
	site  Site
	db    *store.DB
	creds *Credentials
	log   *slog.Logger
	now   func() time.Time
	// badCreds logs refused credentials, a line per source per minute:
	// anyone on the boot network can send them at will.
	badCreds *ratelog.Log
}

// New returns the agent API.
func New(cfg Config) *Server {
	s := &Server{site: cfg.Site, db: cfg.Store, creds: cfg.Credentials, log: cfg.Log, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.badCreds = ratelog.New(ratelog.Config{Log: s.log, Level: slog.LevelWarn,
		Message: "agent request with a bad credential", Counter: badCredentials})
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
	return mux
}

// maxBody bounds request bodies: a hardware report of a large server is
// a few KiB.
const maxBody = 1 << 20

// apiError is an answer other than 200.
type apiError struct {
	status int
	code   string
	field  string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func unauthorized() *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: errCredential.Error()}
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = s.classify(r, err)
	}
	var body agentproto.Error
	body.Error.Code, body.Error.Message, body.Error.Field = ae.code, ae.msg, ae.field
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", httpapi.RetryAfter)
	}
	if ae.status != http.StatusUnauthorized {
		s.log.Warn("agent request refused", "path", r.URL.Path, "remote", r.RemoteAddr, "status", ae.status, "err", ae.msg)
	} else {
		s.badCreds.Record(r.Context(), httpserve.Source(r.RemoteAddr), slog.String("path", r.URL.Path))
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

// bearer returns the request's credential.
func bearer(r *http.Request) (token, error) {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return token{}, errCredential
	}
	return parseToken(strings.TrimSpace(v))
}

// authWorkflow finds the workflow the request's credential opens: the
// workflow it names, or for a discovery credential the current workflow
// of the machine with its MAC. noWorkflow is true when a discovery
// credential is good but its machine has no workflow yet.
func (s *Server) authWorkflow(r *http.Request) (w *store.Workflow, noWorkflow bool, err error) {
	t, err := bearer(r)
	if err != nil {
		return nil, false, unauthorized()
	}
	err = s.db.View(func(tx *store.Tx) error {
		id := t.subject
		if t.kind == kindDiscovery {
			mac, ok := s.creds.verifyDiscovery(t)
			if !ok {
				return unauthorized()
			}
			m, err := tx.MachineByMAC(mac)
			if errors.Is(err, errs.ErrNotFound) || (err == nil && m.Workflow == "") {
				noWorkflow = true
				return nil
			} else if err != nil {
				return err
			}
			id = m.Workflow
		}
		got, err := store.Get[store.Workflow](tx, id)
		if errors.Is(err, errs.ErrNotFound) {
			if t.kind == kindDiscovery {
				noWorkflow = true
				return nil
			}
			return unauthorized() // do not tell which workflows exist
		} else if err != nil {
			return err
		}
		if t.kind == kindWorkflow && !s.creds.verifyWorkflow(t, got) {
			return unauthorized()
		}
		w = got
		return nil
	})
	return w, noWorkflow, err
}

// getWorkflow serves GET PathWorkflow. The read is linearizable: it
// reflects every report acknowledged before it.
func (s *Server) getWorkflow(w http.ResponseWriter, r *http.Request) {
	if _, err := bearer(r); err != nil {
		s.writeError(w, r, unauthorized())
		return
	}
	if err := s.site.Linearize(r.Context()); err != nil {
		s.writeError(w, r, err)
		return
	}
	wf, none, err := s.authWorkflow(r)
	switch {
	case err != nil:
		s.writeError(w, r, err)
	case none:
		s.writeError(w, r, &apiError{status: http.StatusNotFound, code: errs.CodeNotFound, msg: "no workflow for this machine yet"})
	default:
		writeJSON(w, http.StatusOK, agentView(wf, s.now()))
	}
}

// postReport serves POST PathReport.
func (s *Server) postReport(w http.ResponseWriter, r *http.Request) {
	wf, none, err := s.authWorkflow(r)
	switch {
	case err != nil:
		s.writeError(w, r, err)
		return
	case none:
		s.writeError(w, r, &apiError{status: http.StatusNotFound, code: errs.CodeNotFound, msg: "no workflow for this machine"})
		return
	}
	var rep agentproto.Report
	if err := decode(r, &rep); err != nil {
		s.writeError(w, r, err)
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
// the MAC they name.
func (s *Server) postHardware(w http.ResponseWriter, r *http.Request) {
	t, err := bearer(r)
	if err != nil {
		s.writeError(w, r, unauthorized())
		return
	}
	mac, ok := s.creds.verifyDiscovery(t)
	if !ok {
		s.writeError(w, r, unauthorized())
		return
	}
	var hw agentproto.Hardware
	if err := decode(r, &hw); err != nil {
		s.writeError(w, r, err)
		return
	}
	if got, err := store.NormalizeMAC(hw.MAC); err != nil || got != mac {
		s.writeError(w, r, &apiError{status: http.StatusBadRequest, code: errs.CodeInvalid, field: "mac",
			msg: fmt.Sprintf("%q is not the MAC this credential was issued for", hw.MAC)})
		return
	}
	got, err := s.site.Discover(r.Context(), siteHardware(hw))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("discovery", "machine", got.MachineID, "mac", mac, "created", got.Created)
	writeJSON(w, http.StatusOK, agentproto.HardwareAck{MachineID: got.MachineID, Created: got.Created})
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
		Ready: workflow.Ready(st, now),
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
