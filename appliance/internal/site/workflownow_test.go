package site

import (
	"log/slog"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/clock"
)

// TestWorkflowNowAcrossSteps: after a forward step of the proposer's
// clock, workflows are judged as of before it for WorkflowStepWindow, so
// the step times none out; without a guard, now.
func TestWorkflowNowAcrossSteps(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now, mono := t0, time.Duration(0)
	clk := func() time.Time { return now }
	p := NewProposer(ProposerConfig{Now: clk,
		Steps: clock.NewStepGuard(clk, func() time.Duration { return mono }, slog.New(slog.DiscardHandler))})
	now = now.Add(24 * time.Hour)
	if got := p.WorkflowNow(); !got.Equal(t0) {
		t.Fatalf("a day's step: workflows judged at %v, want %v", got, t0)
	}
	now, mono = now.Add(WorkflowStepWindow), mono+WorkflowStepWindow
	if got := p.WorkflowNow(); !got.Equal(now) {
		t.Fatalf("past the window: workflows judged at %v, want now %v", got, now)
	}
	plain := NewProposer(ProposerConfig{Now: clk})
	if got := plain.WorkflowNow(); !got.Equal(now) {
		t.Fatalf("no guard: %v, want %v", got, now)
	}
}
