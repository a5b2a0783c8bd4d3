package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/tracing"
)

// fakeAPI is the appliance's agent API over the real workflow state
// machine, with faults to inject: 503s, a refused credential, downloads
// cut short or stalled.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu          sync.Mutex
	token       string
	st          workflow.State
	hasWorkflow bool // false: GET workflow answers 404 (discovery)
	workflows   int  // how many workflows the machine was given: the ID
	unavailable int  // the next requests to answer 503
	// fault, if set, may answer a report instead of the state machine:
	// it returns the status to answer, or 0 to go on.
	fault     func(rep agentproto.Report) int
	requests  map[string]int      // method path → requests answered (any status)
	applied   []agentproto.Report // reports the state machine accepted
	refused   []agentproto.Report // reports answered 400 or 409
	hardware  []agentproto.Hardware
	artifacts map[string]*artifact // path → file
	onReport  func(rep agentproto.Report)
	// noLost: answer a lost report 400, as a release before them did.
	noLost bool
	// traceparent is the workflow's, shown in its view.
	traceparent string
	// spansFault, if set, may answer a POST of spans instead: it returns
	// the status to answer, or 0 to go on.
	spansFault func() int
	spans      []tracing.Span // the spans received, each decoded as tracing.Span and valid
	badSpans   []string       // why spans were refused as malformed
}

// artifact is a file served by the fake as the appliance serves it (an
// ETag, Range, If-Range), optionally broken.
type artifact struct {
	data []byte
	// cuts break the answers in order: answer i sends cuts[i] bytes of
	// its body, then the connection breaks (0, or past the list: the
	// whole body).
	cuts []int
	// stallFor, if > 0, makes a cut answer stop for this long instead of
	// breaking, then send the rest.
	stallFor time.Duration
	// validator is what the answers carry for If-Range: "" an ETag of the
	// data's sha256, "date" only a Last-Modified, "none" neither.
	validator  string
	noRange    bool   // answer a Range request 200 and the whole file (a source that ignores Range)
	shiftRange int    // answer a Range request from this many bytes earlier
	redirect   string // answer 302 to this URL
	damage     int    // the first damage answers have one byte of the body flipped (a link that damages data)

	downloads int
	requests  []string // each request's "Range | If-Range"
	sent      int      // the body bytes written, in all
}

var artifactDate = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

const fakeToken = "s3cret-token-value"

func newFakeAPI(t *testing.T, actions ...workflow.Action) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, token: fakeToken, requests: map[string]int{}, artifacts: map[string]*artifact{}}
	if len(actions) > 0 {
		f.setWorkflow(actions...)
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// setWorkflow gives the machine a workflow of actions.
func (f *fakeAPI) setWorkflow(acts ...workflow.Action) {
	f.t.Helper()
	known := map[string][]string{}
	for typ, spec := range actions.Catalogue {
		known[typ] = spec.Required
	}
	plan, err := workflow.NewPlan(acts, known)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st, f.hasWorkflow = workflow.NewState(plan, time.Time{}), true
	f.workflows++
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests[r.Method+" "+r.URL.Path]++
	if f.unavailable > 0 {
		f.unavailable--
		f.mu.Unlock()
		apiError(w, http.StatusServiceUnavailable, "unavailable", "the appliance is restarting")
		return
	}
	f.mu.Unlock()
	if a := f.artifact(r.URL.Path); a != nil {
		f.serveArtifact(w, r, a)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		apiError(w, http.StatusUnauthorized, "unauthorized", "wrong credential")
		return
	}
	f.st, _ = workflow.Tick(f.st, time.Now())
	switch r.Method + " " + r.URL.Path {
	case "GET " + agentproto.PathWorkflow:
		if !f.hasWorkflow {
			apiError(w, http.StatusNotFound, "not_found", "no workflow")
			return
		}
		writeJSON(w, f.view())
	case "POST " + agentproto.PathReport:
		f.serveReport(w, r)
	case "POST " + agentproto.PathSpans:
		f.serveSpans(w, r)
	case "POST " + agentproto.PathHardware:
		var hw agentproto.Hardware
		if err := json.NewDecoder(r.Body).Decode(&hw); err != nil {
			apiError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		f.hardware = append(f.hardware, hw)
		writeJSON(w, agentproto.HardwareAck{MachineID: "m-" + strings.ReplaceAll(hw.MAC, ":", ""), Created: true})
	default:
		apiError(w, http.StatusNotFound, "not_found", r.URL.Path)
	}
}

// serveReport applies a report to the state machine. f.mu is held.
func (f *fakeAPI) serveReport(w http.ResponseWriter, r *http.Request) {
	var rep agentproto.Report
	if err := json.NewDecoder(r.Body).Decode(&rep); err != nil {
		apiError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if f.fault != nil {
		if status := f.fault(rep); status != 0 {
			apiError(w, status, "fault", "injected")
			return
		}
	}
	now := time.Now()
	var err error
	st := f.st
	switch rep.Kind {
	case agentproto.ReportStart:
		st, _, err = workflow.Start(st, rep.Action, rep.Attempt, now)
	case agentproto.ReportProgress:
		st, _, err = workflow.Progress(st, rep.Action, rep.Attempt, rep.Progress, rep.Message, now)
	case agentproto.ReportFinish:
		st, _, err = workflow.Finish(st, rep.Action, rep.Attempt, rep.OK, rep.Message, now)
	case agentproto.ReportLost:
		if f.noLost {
			err = &workflow.FieldError{Field: "kind", Message: "unknown"}
			break
		}
		st, _, err = workflow.Lose(st, rep.Action, rep.Attempt, rep.Message, now)
	default:
		err = &workflow.FieldError{Field: "kind", Message: "unknown"}
	}
	if err != nil {
		f.refused = append(f.refused, rep)
		status := http.StatusConflict
		if errors.Is(err, workflow.ErrInvalid) {
			status = http.StatusBadRequest
		}
		apiError(w, status, "refused", err.Error())
		return
	}
	f.st = st
	f.applied = append(f.applied, rep)
	if f.onReport != nil {
		f.onReport(rep)
	}
	writeJSON(w, f.view())
}

// serveSpans keeps the spans of a request, each decoded strictly as
// the appliance does (tracing.Span) and valid. f.mu is held.
func (f *fakeAPI) serveSpans(w http.ResponseWriter, r *http.Request) {
	if f.spansFault != nil {
		if status := f.spansFault(); status != 0 {
			apiError(w, status, "fault", "injected")
			return
		}
	}
	var body agentproto.Spans
	if err := strictJSON(r.Body, &body); err != nil {
		f.badSpans = append(f.badSpans, err.Error())
		apiError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	var got []tracing.Span
	for i, raw := range body.Spans {
		var sp tracing.Span
		err := strictJSON(bytes.NewReader(raw), &sp)
		if err == nil {
			err = sp.Validate()
		}
		if err != nil {
			f.badSpans = append(f.badSpans, fmt.Sprintf("span %d: %v", i, err))
			apiError(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		got = append(got, sp)
	}
	f.spans = append(f.spans, got...)
	writeJSON(w, agentproto.SpansAck{Kept: len(got)})
}

// strictJSON decodes one JSON value, refusing unknown fields.
func strictJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// receivedSpans returns the spans received so far.
func (f *fakeAPI) receivedSpans() []tracing.Span {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tracing.Span(nil), f.spans...)
}

// view is the workflow as the agent API shows it. f.mu is held.
func (f *fakeAPI) view() agentproto.Workflow {
	wf := agentproto.Workflow{ID: fmt.Sprintf("wf-%d", f.workflows), MachineID: "m-1", Status: string(f.st.Status), Reason: f.st.Reason,
		Ready: workflow.Ready(f.st, time.Now()), Poll: 0.01, Traceparent: f.traceparent}
	for _, a := range f.st.Plan.Actions() {
		as, _ := f.st.Action(a.Name)
		wf.Actions = append(wf.Actions, agentproto.Action{Name: a.Name, Type: a.Type, Args: a.Args,
			Status: string(as.Status), Attempt: as.Attempt, Timeout: a.Timeout.Seconds()})
	}
	if wf.Ready == nil {
		wf.Ready = []string{}
	}
	return wf
}

func (f *fakeAPI) artifact(p string) *artifact {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.artifacts[p]
}

// serveArtifact answers a request of a; the answer may be cut or
// stalled.
func (f *fakeAPI) serveArtifact(w http.ResponseWriter, r *http.Request, a *artifact) {
	f.mu.Lock()
	i := a.downloads
	a.downloads++
	a.requests = append(a.requests, r.Header.Get("Range")+" | "+r.Header.Get("If-Range"))
	cut := 0
	if i < len(a.cuts) {
		cut = a.cuts[i]
	}
	f.mu.Unlock()
	if a.redirect != "" {
		http.Redirect(w, r, a.redirect, http.StatusFound)
		return
	}
	from, status := a.answer(w.Header(), r)
	body := a.data[from:]
	if i < a.damage && len(body) > 0 {
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0xff
	}
	if status == http.StatusRequestedRangeNotSatisfiable {
		body = nil
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(status)
	if cut <= 0 || cut >= len(body) {
		f.write(w, a, body)
		return
	}
	f.write(w, a, body[:cut])
	w.(http.Flusher).Flush()
	if a.stallFor > 0 {
		select {
		case <-time.After(a.stallFor):
		case <-r.Context().Done():
			return
		}
		f.write(w, a, body[cut:])
		return
	}
	panic(http.ErrAbortHandler) // the connection breaks mid-stream
}

// answer sets the validator and, for a Range request it honours, the
// Content-Range, and returns where the body starts and the status.
func (a *artifact) answer(h http.Header, r *http.Request) (int, int) {
	var v string
	switch a.validator {
	case "":
		v = `"sha256-` + sha(a.data) + `"`
		h.Set("ETag", v)
	case "date":
		v = artifactDate.Format(http.TimeFormat)
		h.Set("Last-Modified", v)
	}
	var from int
	rg := r.Header.Get("Range")
	if rg == "" || a.noRange || r.Header.Get("If-Range") != v {
		return 0, http.StatusOK
	}
	if _, err := fmt.Sscanf(rg, "bytes=%d-", &from); err != nil || from >= len(a.data) {
		return 0, http.StatusRequestedRangeNotSatisfiable
	}
	from = max(0, from-a.shiftRange)
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, len(a.data)-1, len(a.data)))
	return from, http.StatusPartialContent
}

// write writes b and counts what went out.
func (f *fakeAPI) write(w http.ResponseWriter, a *artifact, b []byte) {
	n, _ := w.Write(b)
	f.mu.Lock()
	a.sent += n
	f.mu.Unlock()
}

// addArtifact serves data at path.
func (f *fakeAPI) addArtifact(path string, data []byte) *artifact {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := &artifact{data: data}
	f.artifacts[path] = a
	return a
}

// state returns the workflow's state.
func (f *fakeAPI) state() workflow.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// with runs fn under the fake's lock.
func (f *fakeAPI) with(fn func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// reports returns the reports applied of one kind.
func (f *fakeAPI) reports(kind string) []agentproto.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []agentproto.Report
	for _, r := range f.applied {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	var e agentproto.Error
	e.Error.Code, e.Error.Message = code, msg
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(e)
}

// fakeSystem records the power calls instead of making them.
type fakeSystem struct {
	mu    sync.Mutex
	calls []string
	// check, if set, runs at each call, e.g. to see what the appliance
	// had acknowledged by then.
	check func(call string)
}

func (s *fakeSystem) record(call string) {
	s.mu.Lock()
	check := s.check
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	if check != nil {
		check(call)
	}
}

func (s *fakeSystem) Sync()           { s.record("sync") }
func (s *fakeSystem) Reboot() error   { s.record("reboot"); return nil }
func (s *fakeSystem) PowerOff() error { s.record("poweroff"); return nil }
func (s *fakeSystem) KexecLoad(kernel, initrd, cmdline string) (string, error) {
	s.record(fmt.Sprintf("kexec-load %s %s %s", kernel, initrd, cmdline))
	return "fake", nil
}
func (s *fakeSystem) KexecReboot() error { s.record("kexec-reboot"); return nil }

func (s *fakeSystem) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// testConfig is a Config with fast timings, reading a command line that
// points at f with token.
func testConfig(t *testing.T, f *fakeAPI, token string, extra ...string) Config {
	t.Helper()
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	line := fmt.Sprintf("console=ttyS0 %s=%s %s=%s %s=m-1 %s=52:54:00:12:34:56 %s",
		agentproto.ParamURL, f.srv.URL, agentproto.ParamToken, token,
		agentproto.ParamMachine, agentproto.ParamMAC, strings.Join(extra, " "))
	if err := os.WriteFile(cmdline, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Config{
		CmdlinePath:      cmdline,
		Root:             t.TempDir(),
		System:           &fakeSystem{},
		MountDir:         t.TempDir(),
		RequestTimeout:   5 * time.Second,
		RetryMin:         2 * time.Millisecond,
		RetryMax:         20 * time.Millisecond,
		AuthRetry:        10 * time.Millisecond,
		CmdlineRetry:     10 * time.Millisecond,
		PollMin:          5 * time.Millisecond,
		PollMax:          50 * time.Millisecond,
		IdlePoll:         50 * time.Millisecond,
		DiscoverPoll:     10 * time.Millisecond,
		ProgressInterval: 5 * time.Millisecond,
		StallTimeout:     5 * time.Second,
		TraceBatch:       10 * time.Millisecond,
		FlushTimeout:     5 * time.Second,
	}
}

// startAgent runs an agent until the test ends, or until stop, which
// returns once Run has.
func startAgent(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(cfg, log).Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(stop)
	return stop
}

// waitDone waits for the workflow to end and returns its state.
func waitDone(t *testing.T, f *fakeAPI) workflow.State {
	t.Helper()
	var st workflow.State
	waitUntil(t, "the workflow to end", func() bool {
		st = f.state()
		return st.Plan != nil && st.Status.Final()
	})
	return st
}

// waitUntil polls cond until it holds, failing the test after 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts an agent on a workflow of actions and returns the fake API
// and system it runs against.
func run(t *testing.T, setup func(f *fakeAPI, cfg *Config), actions ...workflow.Action) (*fakeAPI, *fakeSystem) {
	t.Helper()
	f := newFakeAPI(t, actions...)
	cfg := testConfig(t, f, fakeToken)
	sys := cfg.System.(*fakeSystem)
	if setup != nil {
		f.with(func(f *fakeAPI) { setup(f, &cfg) })
	}
	startAgent(t, cfg)
	return f, sys
}

// requestCount returns how many requests the fake answered for "METHOD path".
func (f *fakeAPI) requestCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[key]
}
