package dhcp

import (
	"log/slog"
	"sync"
	"time"
)

// A wall clock that steps forward (NTP correcting a slow clock, or the
// lab's clock hook) makes every lease look older than it is: leases whose
// clients renew on their own unstepped timers would look expired at once,
// and their addresses would go to other MACs while still in use. So the
// server watches its clock against Go's monotonic clock, which never
// steps, and for one lease time after a forward step of S it judges other
// MACs' leases, holds and quarantines as of S earlier: an address is
// handed to someone else only once it would have been free without the
// step. By then every live client has renewed on the new clock. A step
// back cancels as much of a forward one; a step back alone needs no guard
// (leases then only look younger), and renewals never shorten a lease
// (request).

// stepThreshold is the smallest jump between the wall and the monotonic
// clock taken for a step; below it is drift, or the cost of a read.
const stepThreshold = time.Second

// stepGuard tracks forward steps of a clock (see above).
// A nil *stepGuard guards nothing (a test's clock without a monotonic
// one, Config.Monotonic).
type stepGuard struct {
	mono func() time.Duration // the monotonic clock
	log  *slog.Logger

	mu    sync.Mutex
	mono0 time.Duration // mono() at wall
	wall  time.Time     // the clock's first reading, without a monotonic one
	skew  time.Duration // the wall clock's lead on the monotonic one, last seen
	step  time.Duration // the forward step still guarded against
	since time.Duration // mono() when it was seen
}

func newStepGuard(now func() time.Time, mono func() time.Duration, log *slog.Logger) *stepGuard {
	return &stepGuard{mono: mono, log: log, mono0: mono(), wall: now().Round(0)}
}

// judgeAt is the time to judge other clients' claims on an address of a
// pool whose lease lasts lease, at now (a reading of the guard's clock):
// now, less a forward step seen within the last lease time.
func (g *stepGuard) judgeAt(now time.Time, lease time.Duration) time.Time {
	return now.Add(-g.guarded(now, lease))
}

// guarded notes a step since the last reading and returns the forward
// step to allow for in a pool whose lease lasts lease.
func (g *stepGuard) guarded(now time.Time, lease time.Duration) time.Duration {
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
		g.log.Warn("dhcp: the wall clock stepped; other clients' leases are judged as of before the step for a lease time",
			"step", d, "guarded", g.step)
	}
	if g.step == 0 || mono-g.since >= lease {
		return 0
	}
	return g.step
}
