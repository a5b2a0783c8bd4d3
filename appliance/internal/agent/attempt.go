package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/internal/backoff"
)

// handler runs one attempt of an action type. It returns the message of a
// success, or the error of a failure, or errReported when it reported the
// result itself (terminal actions).
type handler func(ctx context.Context, s *step) (string, error)

// handlers are the action types the agent runs: exactly
// actions.Catalogue's.
var handlers = map[string]handler{
	"disk.wipe":   diskWipe,
	"image.write": imageWrite,
	"file.write":  fileWrite,
	"exec":        execCommand,
	"reboot":      reboot,
	"poweroff":    powerOff,
	"kexec":       kexec,
}

// errReported: the handler reported the attempt's result itself.
var errReported = errors.New("agent: result already reported")

// maxMessage bounds a finish report's message.
const maxMessage = 2048

// attempt runs attempt n of act: it reports the start, runs the handler
// under the action's timeout and reports the result. Once started, the
// attempt is the span action.<name>, failed if it failed.
func (r *runner) attempt(ctx context.Context, act agentproto.Action, n int) {
	log := r.log.With("action", act.Name, "type", act.Type, "attempt", n)
	start := agentproto.Report{Action: act.Name, Attempt: n, Kind: agentproto.ReportStart}
	if !r.report(ctx, log, start) {
		log.Warn("start not acknowledged; the attempt does not run")
		r.mu.Lock()
		if r.ours[act.Name] == n {
			r.ours[act.Name] = n - 1 // never started: it may start when ready
		}
		r.mu.Unlock()
		backoff.Sleep(ctx, r.a.cfg.RetryMin) // should it be refused again, not in a tight loop
		return
	}
	log.Info("action started", "timeout", time.Duration(act.Timeout*float64(time.Second)))
	began := time.Now()
	ctx, span := r.tr.startAction(ctx, act, n)
	defer span.End()
	s := &step{r: r, act: act, attempt: n, log: log, kick: make(chan struct{}, 1), span: span}
	msg, err := s.run(ctx)
	if errors.Is(err, errReported) {
		return
	}
	if ctx.Err() != nil {
		failed(span, "stopped: the appliance ended the attempt or the agent is stopping")
		log.Info("attempt stopped: the appliance ended it or the agent is stopping", "err", err)
		return
	}
	fin := agentproto.Report{Action: act.Name, Attempt: n, Kind: agentproto.ReportFinish, OK: err == nil}
	if err != nil {
		fin.Message = truncate(err.Error(), maxMessage)
		failed(span, fin.Message)
		log.Error("action failed", "err", err, "took", time.Since(began).Round(time.Millisecond))
	} else {
		fin.Progress, fin.Message = 100, truncate(msg, maxMessage)
		log.Info("action succeeded", "msg", msg, "took", time.Since(began).Round(time.Millisecond))
	}
	span.End() // the work's end, not its report's
	s.report(ctx, fin)
}

// step is one attempt of an action, as its handler sees it.
type step struct {
	r       *runner
	act     agentproto.Action
	attempt int
	log     *slog.Logger
	span    trace.Span // the attempt's; records nothing if the run is not traced

	kick     chan struct{}
	mu       sync.Mutex
	pct      int
	msg      string
	stopOnce sync.Once
	stop     func() // stops the progress reporter and waits for it
}

// run runs the handler with the action's timeout and a progress reporter.
func (s *step) run(ctx context.Context) (string, error) {
	h, ok := handlers[s.act.Type]
	if !ok {
		return "", fmt.Errorf("unknown action type %q: this agent runs %s", s.act.Type,
			strings.Join(slices.Sorted(maps.Keys(handlers)), ", "))
	}
	hctx := ctx
	if s.act.Timeout > 0 {
		timeout := time.Duration(s.act.Timeout * float64(time.Second))
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s.progressLoop(hctx, quit)
	}()
	s.stop = func() { close(quit); <-done }
	defer s.stopProgress()
	msg, err := h(hctx, s)
	if err != nil && ctx.Err() == nil && errors.Is(hctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %gs: %w", s.act.Timeout, err)
	}
	return msg, err
}

// arg returns an argument of the action.
func (s *step) arg(name string) string { return s.act.Args[name] }

// cfg is the agent's configuration.
func (s *step) cfg() *Config { return &s.r.a.cfg }

// Progress records the attempt's progress; the reporter sends the latest
// at most every ProgressInterval.
func (s *step) Progress(pct int, msg string) {
	s.mu.Lock()
	s.pct, s.msg = min(max(pct, 0), 100), msg
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// progressLoop sends progress reports until quit is closed or ctx (the
// attempt) ends. A report already on its way when quit closes is sent
// until acknowledged first, so that the progress an attempt reported
// reaches the timeline before its finish even across an outage of the
// appliance.
func (s *step) progressLoop(ctx context.Context, quit <-chan struct{}) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-quit:
			return
		case <-s.kick:
		}
		if wait := s.cfg().ProgressInterval - time.Since(last); !last.IsZero() && wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case <-time.After(wait):
			}
		}
		s.mu.Lock()
		rep := agentproto.Report{Action: s.act.Name, Attempt: s.attempt, Kind: agentproto.ReportProgress,
			Progress: s.pct, Message: truncate(s.msg, maxMessage)}
		s.mu.Unlock()
		s.log.Info("progress", "pct", rep.Progress, "msg", rep.Message)
		last = time.Now()
		if !s.r.report(ctx, s.log, rep) {
			return // the attempt ended, or the appliance refuses its reports
		}
	}
}

// stopProgress stops the progress reporter, after the report on its way
// if there is one: no progress report goes out after it returns.
func (s *step) stopProgress() {
	s.stopOnce.Do(func() {
		if s.stop != nil {
			s.stop()
		}
	})
}

// report sends a report of this attempt until it is acknowledged.
func (s *step) report(ctx context.Context, rep agentproto.Report) bool {
	return s.r.report(ctx, s.log, rep)
}

// finishOK reports the attempt succeeded before the handler returns, and
// reports whether the appliance acknowledged it: a terminal action's
// last word. The report outlives the attempt's context: the loop may
// cancel the attempt as soon as it sees the appliance applied the report,
// before its answer arrives; a repeated success is acknowledged again.
func (s *step) finishOK(msg string) bool {
	s.stopProgress()
	fin := agentproto.Report{Action: s.act.Name, Attempt: s.attempt, Kind: agentproto.ReportFinish,
		OK: true, Progress: 100, Message: msg}
	return s.report(s.r.root, fin)
}

// truncate shortens s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s + "..."
}
