package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/internal/backoff"
)

// errNoWorkflow: in discovery mode, the machine has no workflow yet (404).
var errNoWorkflow = errors.New("agent: no workflow yet")

// runner fetches the workflow and runs its ready actions.
type runner struct {
	a      *Agent
	c      *client
	tr     *tracer
	params Params
	log    *slog.Logger
	wake   chan struct{}   // a finish or a refused report: fetch again now
	root   context.Context // the agent's: ends only when the agent stops

	mu       sync.Mutex
	workflow string                 // the ID of the workflow the maps are about
	running  map[string]*attemptRun // action name → the attempt this process runs
	ours     map[string]int         // action name → the latest attempt this process started or wrote off
	traced   string                 // the ID of the workflow whose agent.run span was started
	run      trace.Span             // that span, until it ends (nil after)
	wg       sync.WaitGroup
}

// attemptRun is an attempt in progress.
type attemptRun struct {
	attempt int
	cancel  context.CancelFunc
}

func newRunner(a *Agent, c *client, tr *tracer, p Params, log *slog.Logger) *runner {
	return &runner{
		a: a, c: c, tr: tr, params: p, log: log,
		wake:    make(chan struct{}, 1),
		running: make(map[string]*attemptRun),
		ours:    make(map[string]int),
	}
}

// poke makes the loop fetch the workflow now.
func (r *runner) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// loop fetches the workflow and acts on it until ctx ends.
func (r *runner) loop(ctx context.Context) {
	r.root = ctx
	defer r.endRun(nil) // after the attempts' spans
	defer r.wg.Wait()
	defer r.cancelAll()
	var seenDone string
	var waiting bool
	for {
		wf, err := r.fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case errors.Is(err, errNoWorkflow):
			if !waiting {
				r.log.Info("no workflow for this machine yet; waiting", "poll", r.a.cfg.DiscoverPoll)
				waiting = true
			}
			wait = r.a.cfg.DiscoverPoll
		case err != nil:
			r.log.Error("fetch workflow", "err", err)
			wait = r.a.cfg.PollMax
		case wf.Done():
			r.switchTo(wf.ID)
			r.cancelAll()
			r.endRun(wf)
			if key := wf.ID + "/" + wf.Status; key != seenDone {
				r.log.Info("workflow done; idling", "workflow", wf.ID, "status", wf.Status, "reason", wf.Reason)
				seenDone = key
			}
			wait = r.a.cfg.IdlePoll
		default:
			seenDone, waiting = "", false
			r.switchTo(wf.ID)
			r.act(ctx, wf)
			wait = clamp(time.Duration(wf.Poll*float64(time.Second)), r.a.cfg.PollMin, r.a.cfg.PollMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return min(max(d, lo), hi)
}

// fetch gets the workflow, retrying until it is answered.
func (r *runner) fetch(ctx context.Context) (*agentproto.Workflow, error) {
	var wf agentproto.Workflow
	var final []int
	if r.params.Discover() {
		final = []int{http.StatusNotFound}
	}
	for {
		err := r.c.call(ctx, nil, http.MethodGet, agentproto.PathWorkflow, nil, &wf, final...)
		switch {
		case err == nil:
			return &wf, nil
		case isStatus(err, http.StatusNotFound):
			return nil, errNoWorkflow
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		// 400 or 409 to a GET: nothing to do but ask again, slowly.
		r.log.Warn("appliance refused to serve the workflow; asking again", "err", err)
		if !backoff.Sleep(ctx, r.a.cfg.RetryMax) {
			return nil, ctx.Err()
		}
	}
}

// switchTo forgets the attempts of an earlier workflow (a discovered
// machine may be given another) and stops those still running.
func (r *runner) switchTo(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == r.workflow {
		return
	}
	if r.workflow != "" {
		r.log.Info("a new workflow", "workflow", id, "previous", r.workflow)
	}
	for _, run := range r.running {
		run.cancel()
	}
	r.endRunLocked(nil)
	r.workflow = id
	r.running = make(map[string]*attemptRun)
	r.ours = make(map[string]int)
}

// act writes off the attempts an earlier process left running, stops the
// attempts the appliance ended, and starts the ready actions.
func (r *runner) act(ctx context.Context, wf *agentproto.Workflow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startRun(wf)
	byName := make(map[string]agentproto.Action, len(wf.Actions))
	for _, act := range wf.Actions {
		byName[act.Name] = act
		if act.Status == "running" && act.Attempt > r.ours[act.Name] {
			// Not an attempt of this process: an earlier one's.
			r.ours[act.Name] = act.Attempt
			r.orphan(ctx, act)
		}
	}
	for name, run := range r.running {
		act, ok := byName[name]
		if !ok || act.Attempt > run.attempt || act.Attempt == run.attempt && act.Status != "running" {
			// The appliance ended this attempt (timed out, workflow
			// canceled) or it finished: nothing more to report.
			run.cancel()
		}
	}
	for _, name := range wf.Ready {
		act, ok := byName[name]
		if !ok || r.running[name] != nil || act.Attempt+1 <= r.ours[name] {
			continue // running, or a stale view of an attempt that ran
		}
		r.start(ctx, act)
	}
}

// orphan reports an attempt of an earlier process lost: the appliance
// retries it apart from the action's retries. An appliance of a release
// before lost reports refuses one as bad input (400); it is told the
// attempt failed instead, as those releases' agents did. r.mu is held.
func (r *runner) orphan(ctx context.Context, act agentproto.Action) {
	log := r.log.With("action", act.Name, "type", act.Type, "attempt", act.Attempt)
	log.Warn("an earlier agent left this attempt running; reporting it lost")
	rep := agentproto.Report{Action: act.Name, Attempt: act.Attempt, Kind: agentproto.ReportLost,
		Message: "the agent restarted during attempt " + strconv.Itoa(act.Attempt)}
	r.wg.Go(func() {
		err := r.c.call(ctx, log, http.MethodPost, agentproto.PathReport, rep, nil)
		var se *StatusError
		if errors.As(err, &se) && se.Status == http.StatusBadRequest {
			log.Info("the appliance does not know lost reports; reporting the attempt failed")
			rep.Kind = agentproto.ReportFinish
			err = r.c.call(ctx, log, http.MethodPost, agentproto.PathReport, rep, nil)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("appliance refused the report", "kind", rep.Kind, "err", err)
		}
		r.poke()
	})
}

// start runs attempt act.Attempt+1 in its own goroutine. r.mu is held.
func (r *runner) start(ctx context.Context, act agentproto.Action) {
	n := act.Attempt + 1
	actx, cancel := context.WithCancel(ctx)
	if r.run != nil {
		actx = trace.ContextWithSpan(actx, r.run) // the attempt's span is the run's child
	}
	run := &attemptRun{attempt: n, cancel: cancel}
	r.running[act.Name] = run
	r.ours[act.Name] = n
	r.wg.Go(func() {
		defer func() {
			cancel()
			r.mu.Lock()
			if r.running[act.Name] == run {
				delete(r.running, act.Name)
			}
			r.mu.Unlock()
			r.poke()
		}()
		r.attempt(actx, act, n)
	})
}

// startRun starts the agent.run span of wf, once per workflow: under
// the workflow's traceparent, else the command line's (the installer was
// booted for this workflow). r.mu is held.
func (r *runner) startRun(wf *agentproto.Workflow) {
	if r.traced == wf.ID {
		return
	}
	r.traced = wf.ID
	tp := wf.Traceparent
	if tp == "" {
		tp = r.params.Traceparent
	}
	span := r.tr.startRun(tp, wf, r.params)
	if !span.SpanContext().IsValid() {
		if tp != "" {
			r.log.Warn("the workflow's traceparent is not one: its run is not traced", "traceparent", tp)
		}
		return
	}
	r.run = span
}

// endRun ends the agent.run span, if it has not ended: failed if wf (the
// workflow as it ended; nil if it did not) failed.
func (r *runner) endRun(wf *agentproto.Workflow) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endRunLocked(wf)
}

// endRunLocked is endRun with r.mu held.
func (r *runner) endRunLocked(wf *agentproto.Workflow) {
	if r.run == nil {
		return
	}
	if wf != nil && wf.Status != "succeeded" {
		failed(r.run, "workflow "+wf.Status+": "+wf.Reason)
	}
	r.run.End()
	r.run = nil
}

// cancelAll stops every attempt in progress.
func (r *runner) cancelAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, run := range r.running {
		run.cancel()
	}
}

// report sends a report until the appliance acknowledges it, and reports
// whether it did. A refused report (400, 409) is logged and makes the
// loop fetch the workflow again.
func (r *runner) report(ctx context.Context, log *slog.Logger, rep agentproto.Report) bool {
	err := r.c.call(ctx, log, http.MethodPost, agentproto.PathReport, rep, nil)
	if err == nil {
		return true
	}
	if ctx.Err() == nil {
		log.Warn("appliance refused the report", "kind", rep.Kind, "err", err)
		r.poke()
	}
	return false
}
