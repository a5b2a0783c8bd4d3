package clock

import (
	"log/slog"
	"sync"
	"time"
)

// A wall clock that steps forward (NTP correcting a slow clock, or the
// lab's clock hook) makes everything dated before the step look older
// than it is: DHCP leases whose clients renew on their own unstepped
// timers look expired at once, and workflows look past their deadlines.
// A StepGuard watches a clock against Go's monotonic clock, which never
// steps, and for a window after a forward step of S its user judges what
// was dated before the step as of S earlier (JudgeAt): a lease is over,
// a workflow late, only once it would have been without the step. A step
// back cancels as much of a forward one; a step back alone needs no
// guard (things then only look younger).
//
// Guarded: DHCP leases and holds, workflow deadlines, and the metadata
// service's leases and IMDSv2 tokens (which a machine got for a TTL of
// its own). Not guarded, on purpose: API tokens and console sessions,
// whose expiry is a date an admin chose, kept by the corrected clock;
// and BMC job deadlines, which only decide when a job an earlier leader
// left running may start again, and a new leader takes such a job over
// after a few seconds of leading anyway (jobs.Runner).

// stepThreshold is the smallest jump between the wall and the monotonic
// clock taken for a step; below it is drift, or the cost of a read.
const stepThreshold = time.Second

// StepGuard tracks forward steps of a clock (see above). A nil
// *StepGuard guards nothing.
type StepGuard struct {
	mono func() time.Duration // the monotonic clock
	log  *slog.Logger

	mu    sync.Mutex
	mono0 time.Duration // mono() at wall
	wall  time.Time     // the clock's first reading, without a monotonic one
	skew  time.Duration // the wall clock's lead on the monotonic one, last seen
	step  time.Duration // the forward step still guarded against
	since time.Duration // mono() when it was seen
}

// NewStepGuard watches now against mono (Monotonic), logging each step
// it sees to log.
func NewStepGuard(now func() time.Time, mono func() time.Duration, log *slog.Logger) *StepGuard {
	return &StepGuard{mono: mono, log: log, mono0: mono(), wall: now().Round(0)}
}

// JudgeAt is the time to judge things dated before a step by, at now (a
// reading of the guard's clock): now, less a forward step seen within
// the last window.
func (g *StepGuard) JudgeAt(now time.Time, window time.Duration) time.Time {
	return now.Add(-g.guarded(now, window))
}

// guarded notes a step since the last reading and returns the forward
// step to allow for within window.
func (g *StepGuard) guarded(now time.Time, window time.Duration) time.Duration {
	if g == nil {
		return 0
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	mono := g.mono()
	skew := now.Round(0).Sub(g.wall) - (mono - g.mono0)
	if d := skew - g.skew; d >= stepThreshold || d <= -stepThreshold {
		g.skew = skew
		g.step = max(0, g.step+d)
		g.since = mono
		g.log.Warn("the wall clock stepped; what was dated before the step is judged as of before it for a while",
			"step", d, "guarded", g.step)
	}
	if g.step == 0 || mono-g.since >= window {
		return 0
	}
	return g.step
}
