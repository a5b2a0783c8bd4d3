package backoff

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCeiling(t *testing.T) {
	const s = time.Second
	tests := map[string]struct {
		e    Exponential
		n    []int
		want []time.Duration
	}{
		// The schedules of the callers, with their defaults.
		"bmc pool": {e: Exponential{Base: s, Max: 10 * s}, n: []int{1, 2, 3, 4, 5, 100},
			want: []time.Duration{s, 2 * s, 4 * s, 8 * s, 10 * s, 10 * s}},
		"agent": {e: Exponential{Base: 250 * time.Millisecond, Max: 5 * s}, n: []int{1, 2, 3, 4, 5, 6, 1 << 30},
			want: []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, s, 2 * s, 4 * s, 5 * s, 5 * s}},
		"sync client": {e: Exponential{Base: 500 * time.Millisecond, Max: 5 * s}, n: []int{1, 2, 3, 4, 5, 21, 64},
			want: []time.Duration{500 * time.Millisecond, s, 2 * s, 4 * s, 5 * s, 5 * s, 5 * s}},
		"no failure yet": {e: Exponential{Base: s, Max: 10 * s}, n: []int{0, -1}, want: []time.Duration{s, s}},
		"base over max":  {e: Exponential{Base: 20 * s, Max: 10 * s}, n: []int{1, 2}, want: []time.Duration{10 * s, 10 * s}},
		"huge max": {e: Exponential{Base: s, Max: math.MaxInt64}, n: []int{2, 34, 35, 1000},
			want: []time.Duration{2 * s, s << 33, math.MaxInt64, math.MaxInt64}},
		"zero base": {e: Exponential{Max: 10 * s}, n: []int{1, 5}, want: []time.Duration{0, 0}},
		"zero max":  {e: Exponential{Base: s}, n: []int{1, 5}, want: []time.Duration{0, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []time.Duration
			for _, n := range tc.n {
				got = append(got, tc.e.Ceiling(n))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Ceiling(%v) (-want +got):\n%s", tc.n, diff)
			}
		})
	}
}

func TestJitter(t *testing.T) {
	tests := map[string]struct {
		d          time.Duration
		wantSpread bool // draws land in both halves of [d/2, d]
	}{
		"zero":        {d: 0},
		"negative":    {d: -time.Second},
		"one ns":      {d: 1},
		"two ns":      {d: 2},
		"second":      {d: time.Second, wantSpread: true},
		"five minute": {d: 5 * time.Minute, wantSpread: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lo, hi := max(tc.d/2, 0), max(tc.d, 0)
			var low, high bool
			for range 1000 {
				got := Jitter(tc.d)
				if got < lo || got > hi {
					t.Fatalf("Jitter(%v) = %v, want between %v and %v", tc.d, got, lo, hi)
				}
				low = low || got < lo+(hi-lo)/2
				high = high || got > lo+(hi-lo)/2
			}
			if tc.wantSpread && !(low && high) {
				t.Errorf("Jitter(%v): 1000 draws all in one half (low %v, high %v)", tc.d, low, high)
			}
		})
	}
}

func TestWait(t *testing.T) {
	e := Exponential{Base: time.Second, Max: 10 * time.Second}
	for n, ceiling := range map[int]time.Duration{1: time.Second, 3: 4 * time.Second, 9: 10 * time.Second} {
		for range 100 {
			if got := e.Wait(n); got < ceiling/2 || got > ceiling {
				t.Fatalf("Wait(%d) = %v, want between %v and %v", n, got, ceiling/2, ceiling)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	tests := map[string]struct {
		cancelAfter time.Duration // 0: never
		want        bool
		wantElapsed time.Duration
	}{
		"waits":          {want: true, wantElapsed: time.Minute},
		"ctx ends first": {cancelAfter: 10 * time.Second, want: false, wantElapsed: 10 * time.Second},
		"ctx ended":      {cancelAfter: -1, want: false, wantElapsed: 0},
		"ctx ends after": {cancelAfter: 2 * time.Minute, want: true, wantElapsed: time.Minute},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				switch {
				case tc.cancelAfter < 0:
					cancel()
				case tc.cancelAfter > 0:
					time.AfterFunc(tc.cancelAfter, cancel)
				}
				start := time.Now()
				got := Sleep(ctx, time.Minute)
				if got != tc.want || time.Since(start) != tc.wantElapsed {
					t.Errorf("Sleep = %v after %v, want %v after %v", got, time.Since(start), tc.want, tc.wantElapsed)
				}
			})
		})
	}
}
