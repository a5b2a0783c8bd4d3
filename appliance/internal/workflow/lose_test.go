package workflow

import (
	"fmt"
	"testing"
)

const restarted = "the agent restarted during attempt 1"

// TestLose: a lost attempt is retried at once without using a retry, up
// to MaxLost times; the next lost one is a failure; a late or duplicate
// report changes nothing.
func TestLose(t *testing.T) {
	lostRetry := func(attempt, lost int) string {
		return fmt.Sprintf("retry after lost attempt %d (%d of %d lost attempts retried apart from the action's retries)", attempt, lost, MaxLost)
	}
	runCases(t, map[string]tcase{
		"a lost wipe, which has no retries, is retried": {
			setup: []op{start("wipe", 1, 0)},
			op:    lose("wipe", 1, restarted, minute),
			want: []Transition{
				tr("wipe", Running, Failed, 1, "lost: "+restarted, minute),
				tr("wipe", Failed, Pending, 1, lostRetry(1, 1), minute),
			},
			status: Running,
			actions: map[string]ActionState{"wipe": {Name: "wipe", Status: Pending, Attempt: 1, Lost: 1,
				StartedAt: t0, FinishedAt: at(minute), Message: "lost: " + restarted, NotBefore: at(minute)}},
		},
		"the retry of a lost attempt starts at once": {
			setup: []op{start("wipe", 1, 0), lose("wipe", 1, restarted, minute)},
			op:    start("wipe", 2, minute),
			want:  []Transition{tr("wipe", Pending, Running, 2, "", minute)},
			actions: map[string]ActionState{"wipe": {Name: "wipe", Status: Running, Attempt: 2, Lost: 1,
				StartedAt: at(minute)}},
		},
		"a lost attempt keeps the action's retries": {
			setup: append(imageRunning[:3:3], lose("image", 1, restarted, 2*minute), start("image", 2, 2*minute),
				finish("image", 2, false, "connection reset", 3*minute), start("image", 3, 3*minute+5*sec),
				finish("image", 3, false, "connection reset", 4*minute)),
			op:      start("image", 4, 4*minute+10*sec),
			want:    []Transition{tr("image", Pending, Running, 4, "", 4*minute+10*sec)},
			actions: map[string]ActionState{"image": {Name: "image", Status: Running, Attempt: 4, Lost: 1, StartedAt: at(4*minute + 10*sec)}},
		},
		"the failure after a lost attempt is retry 1, after the first backoff": {
			setup: []op{start("wipe", 1, 0), finish("wipe", 1, true, "", minute), start("image", 1, minute),
				lose("image", 1, restarted, 2*minute), start("image", 2, 2*minute)},
			op: finish("image", 2, false, "connection reset", 3*minute),
			want: []Transition{
				tr("image", Running, Failed, 2, "connection reset", 3*minute),
				tr("image", Failed, Pending, 2, "retry 1 of 2 after 5s", 3*minute),
			},
		},
		"the lost attempt past MaxLost fails the action": {
			setup: []op{start("wipe", 1, 0), lose("wipe", 1, restarted, sec), start("wipe", 2, sec),
				lose("wipe", 2, "x", 2*sec), start("wipe", 3, 2*sec), lose("wipe", 3, "x", 3*sec), start("wipe", 4, 3*sec)},
			op: lose("wipe", 4, "x", 4*sec),
			want: []Transition{
				tr("wipe", Running, Failed, 4, "lost: x", 4*sec),
				tr("image", Pending, Skipped, 0, "action wipe failed: lost: x", 4*sec),
				tr("config", Pending, Skipped, 0, "action wipe failed: lost: x", 4*sec),
				tr("reboot", Pending, Skipped, 0, "action wipe failed: lost: x", 4*sec),
				wtr(Running, Failed, "action wipe failed: lost: x", 4*sec),
			},
			status: Failed,
		},
		"a duplicate": {
			setup: []op{start("wipe", 1, 0), lose("wipe", 1, restarted, sec)},
			op:    lose("wipe", 1, restarted, 2*sec),
		},
		"a lost attempt that had succeeded": {
			setup: []op{start("wipe", 1, 0), finish("wipe", 1, true, "", sec)},
			op:    lose("wipe", 1, restarted, 2*sec),
			err:   ErrConflict,
		},
		"an attempt that has not started": {
			setup: []op{start("wipe", 1, 0)},
			op:    lose("wipe", 2, restarted, sec),
			err:   ErrNotRunning,
		},
		"an unknown action": {
			op:  lose("format", 1, restarted, sec),
			err: ErrUnknownAction,
		},
		"a bad attempt number": {
			op:  lose("wipe", 0, restarted, sec),
			err: ErrInvalid,
		},
	})
}
