package clock

import (
	"log/slog"
	"testing"
	"time"
)

// TestStepGuard steps a clock forward, back and forward again against a
// monotonic clock the test moves, and checks what JudgeAt allows for.
func TestStepGuard(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now, mono := t0, time.Duration(0)
	pass := func(d time.Duration) { now, mono = now.Add(d), mono+d }
	g := NewStepGuard(func() time.Time { return now }, func() time.Duration { return mono }, slog.New(slog.NewTextHandler(t.Output(), nil)))
	const window = time.Hour
	check := func(what string, want time.Duration) {
		t.Helper()
		if got := now.Sub(g.JudgeAt(now, window)); got != want {
			t.Fatalf("%s: judged %v before now, want %v", what, got, want)
		}
	}
	pass(time.Minute)
	check("no step", 0)
	now = now.Add(500 * time.Millisecond) // drift, not a step
	check("drift", 0)
	now = now.Add(24 * time.Hour)
	check("a day forward", 24*time.Hour+500*time.Millisecond)
	pass(30 * time.Minute)
	check("within the window", 24*time.Hour+500*time.Millisecond)
	now = now.Add(-24 * time.Hour)
	check("back again", 500*time.Millisecond)
	pass(window)
	check("past the window", 0)
	now = now.Add(-time.Hour)
	check("a step back alone", 0)
	var none *StepGuard
	if got := none.JudgeAt(now, window); !got.Equal(now) {
		t.Fatalf("a nil guard judged %v, want now", got)
	}
}
