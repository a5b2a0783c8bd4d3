// Package backoff is the retry schedule Outpost's clients share (BMC
// calls, the installer's agent, the appliance's link to central): waits
// that double from a base up to a cap, each jittered to between half and
// all of itself ("equal jitter"), so that many callers failing at once
// spread out, yet none waits longer than the cap.
//
// A caller counts its failures and asks for the wait after them; the
// schedule keeps no state, so a caller that starts over simply counts
// from one again.
//
// It is not github.com/cenkalti/backoff: that library jitters
// symmetrically around the interval and caps the interval before the
// jitter, so its waits go up to half again over the cap, and it offers
// no jitter of a caller's own wait (the sync client jitters its long
// wait after a refusal too).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Exponential is a schedule: Base after the first failure, doubled after
// each further one, up to Max.
type Exponential struct {
	Base, Max time.Duration
}

// Ceiling returns the wait after n failures before jitter: Base doubled
// n-1 times, at most Max. It is zero unless Base and Max are positive.
func (e Exponential) Ceiling(n int) time.Duration {
	if e.Base <= 0 || e.Max <= 0 {
		return 0
	}
	d := e.Base
	for i := 1; i < n && d < e.Max; i++ {
		if d > e.Max/2 {
			return e.Max // and no overflow
		}
		d *= 2
	}
	return min(d, e.Max)
}

// Wait returns the jittered wait after n failures: between half and all
// of Ceiling(n).
func (e Exponential) Wait(n int) time.Duration { return Jitter(e.Ceiling(n)) }

// Jitter returns a random duration between half and all of d (zero for a
// d that is not positive).
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Sleep waits d or until ctx ends, and reports whether d passed (false:
// ctx ended first).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
