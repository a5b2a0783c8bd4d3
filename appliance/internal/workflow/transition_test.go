package workflow

import (
	"testing"
	"time"
)

const (
	sec    = time.Second
	minute = time.Minute
)

// imageRunning reaches attempt 1 of image running, started at 1m.
var imageRunning = []op{start("wipe", 1, 0), finish("wipe", 1, true, "", minute), start("image", 1, minute)}

// imageRetrying reaches image failed at 2m, its retry due at 2m5s.
var imageRetrying = append(imageRunning[:3:3], finish("image", 1, false, "connection reset", 2*minute))

// rebootRunning reaches the last action running, at 5m.
var rebootRunning = append(imageRunning[:3:3],
	finish("image", 1, true, "", 3*minute), start("config", 1, 4*minute), finish("config", 1, true, "", 4*minute), start("reboot", 1, 5*minute))

func TestStart(t *testing.T) {
	runCases(t, map[string]tcase{
		"the first start starts the workflow": {
			op:     start("wipe", 1, 0),
			want:   []Transition{wtr(Pending, Running, "", 0), tr("wipe", Pending, Running, 1, "", 0)},
			status: Running,
			actions: map[string]ActionState{
				"wipe":  {Name: "wipe", Status: Running, Attempt: 1, StartedAt: t0},
				"image": {Name: "image", Status: Pending},
			},
		},
		"an action whose need succeeded": {
			setup:   []op{start("wipe", 1, 0), finish("wipe", 1, true, "", minute)},
			op:      start("image", 1, 2*minute),
			want:    []Transition{tr("image", Pending, Running, 1, "", 2*minute)},
			status:  Running,
			actions: map[string]ActionState{"image": {Name: "image", Status: Running, Attempt: 1, StartedAt: at(2 * minute)}},
		},
		"an action whose need failed with continue": {
			plan:  []Action{lenient()[0], {Name: "after", Type: "exec", Args: map[string]string{"command": "true"}, Needs: []string{"inventory"}}},
			setup: []op{start("inventory", 1, 0), finish("inventory", 1, false, "no lshw", sec), start("inventory", 2, 6*sec), finish("inventory", 2, false, "no lshw", 7*sec)},
			op:    start("after", 1, 8*sec),
			want:  []Transition{tr("after", Pending, Running, 1, "", 8*sec)},
		},
		"a retry once its backoff elapsed": {
			setup: imageRetrying,
			op:    start("image", 2, 2*minute+5*sec),
			want:  []Transition{tr("image", Pending, Running, 2, "", 2*minute+5*sec)},
			actions: map[string]ActionState{
				"image": {Name: "image", Status: Running, Attempt: 2, StartedAt: at(2*minute + 5*sec)},
			},
		},
		"duplicate": {
			setup:   []op{start("wipe", 1, 0)},
			op:      start("wipe", 1, sec),
			actions: map[string]ActionState{"wipe": {Name: "wipe", Status: Running, Attempt: 1, StartedAt: t0}},
		},
		"duplicate of an attempt that failed": {
			setup: imageRetrying,
			op:    start("image", 1, 3*minute),
		},
		"duplicate of an attempt that succeeded, in a finished workflow": {
			setup: append(rebootRunning[:7:7], finish("reboot", 1, true, "", 6*minute)),
			op:    start("reboot", 1, 7*minute),
		},
		"a need still running": {
			setup:   []op{start("wipe", 1, 0)},
			op:      start("image", 1, sec),
			err:     ErrNotReady,
			errText: "workflow: action is not ready: image needs wipe, which is running",
		},
		"a need still pending": {
			op:  start("config", 1, 0),
			err: ErrNotReady,
		},
		"a retry before its backoff elapsed": {
			setup:   imageRetrying,
			op:      start("image", 2, 2*minute+4*sec),
			err:     ErrNotReady,
			errText: "workflow: action is not ready: image may not be retried before 2026-03-01T10:02:05Z",
		},
		"the next attempt while one runs": {
			setup:   []op{start("wipe", 1, 0)},
			op:      start("wipe", 2, sec),
			err:     ErrNotReady,
			errText: "workflow: action is not ready: wipe is running",
		},
		"an attempt out of turn": {
			op:      start("wipe", 2, 0),
			err:     ErrConflict,
			errText: "workflow: report conflicts with the recorded result: wipe cannot start attempt 2: its last attempt was 0",
		},
		"attempt zero": {
			op:      start("wipe", 0, 0),
			err:     ErrInvalid,
			errText: "attempt: must be at least 1",
		},
		"an unknown action": {
			op:      start("format", 1, 0),
			err:     ErrUnknownAction,
			errText: `workflow: unknown action "format"`,
		},
		"a finished workflow": {
			setup:   []op{cancel("", 0)},
			op:      start("wipe", 1, sec),
			err:     ErrFinished,
			errText: "workflow: workflow is finished (failed)",
		},
		"at the deadline": {
			deadline: 30 * minute,
			op:       start("wipe", 1, 30*minute),
			err:      ErrNotReady,
			errText:  "workflow: action is not ready: the workflow's deadline 2026-03-01T10:30:00Z has passed",
		},
	})
}

func TestProgress(t *testing.T) {
	runCases(t, map[string]tcase{
		"progress": {
			setup: imageRunning,
			op:    progress("image", 1, 40, "400 MiB of 1 GiB", 2*minute),
			want:  []Transition{{Action: "image", From: Running, To: Running, Attempt: 1, Progress: 40, Message: "400 MiB of 1 GiB", At: at(2 * minute)}},
			actions: map[string]ActionState{
				"image": {Name: "image", Status: Running, Attempt: 1, StartedAt: at(minute), Progress: 40, Message: "400 MiB of 1 GiB"},
			},
		},
		"less progress": {
			setup: append(imageRunning[:3:3], progress("image", 1, 40, "writing", 2*minute)),
			op:    progress("image", 1, 10, "verifying", 3*minute),
			want:  []Transition{{Action: "image", From: Running, To: Running, Attempt: 1, Progress: 10, Message: "verifying", At: at(3 * minute)}},
		},
		"duplicate": {
			setup: append(imageRunning[:3:3], progress("image", 1, 40, "writing", 2*minute)),
			op:    progress("image", 1, 40, "writing", 3*minute),
		},
		"above 100": {
			setup:   imageRunning,
			op:      progress("image", 1, 101, "", 2*minute),
			err:     ErrInvalid,
			errText: "progress: must be between 0 and 100",
		},
		"negative": {
			setup: imageRunning,
			op:    progress("image", 1, -1, "", 2*minute),
			err:   ErrInvalid,
		},
		"a pending action": {
			setup:   imageRunning,
			op:      progress("config", 1, 10, "", 2*minute),
			err:     ErrNotRunning,
			errText: "workflow: action is not running: attempt 1 of config is not running",
		},
		"another attempt": {
			setup: imageRunning,
			op:    progress("image", 2, 10, "", 2*minute),
			err:   ErrNotRunning,
		},
		"an attempt that failed": {
			setup: imageRetrying,
			op:    progress("image", 1, 10, "", 3*minute),
			err:   ErrNotRunning,
		},
		"an action that succeeded": {
			setup: imageRunning,
			op:    progress("wipe", 1, 100, "", 2*minute),
			err:   ErrNotRunning,
		},
		"a finished workflow": {
			setup: append(imageRunning[:3:3], cancel("", 2*minute)),
			op:    progress("image", 1, 10, "", 3*minute),
			err:   ErrFinished,
		},
		"an unknown action": {
			op:  progress("format", 1, 10, "", 0),
			err: ErrUnknownAction,
		},
	})
}

func TestFinish(t *testing.T) {
	skipped := func(reason string, d time.Duration, names ...string) []Transition {
		var trs []Transition
		for _, n := range names {
			trs = append(trs, tr(n, Pending, Skipped, 0, reason, d))
		}
		return trs
	}
	const wipeFailed = "action wipe failed: no disk"
	runCases(t, map[string]tcase{
		"success": {
			setup:  []op{start("wipe", 1, 0)},
			op:     finish("wipe", 1, true, "wiped 1 disk", minute),
			want:   []Transition{tr("wipe", Running, Succeeded, 1, "wiped 1 disk", minute)},
			status: Running,
			actions: map[string]ActionState{
				"wipe": {Name: "wipe", Status: Succeeded, Attempt: 1, StartedAt: t0, FinishedAt: at(minute), Progress: 100, Message: "wiped 1 disk"},
			},
		},
		"the last success ends the workflow": {
			setup:  rebootRunning,
			op:     finish("reboot", 1, true, "rebooting", 5*minute),
			want:   []Transition{tr("reboot", Running, Succeeded, 1, "rebooting", 5*minute), wtr(Running, Succeeded, "", 5*minute)},
			status: Succeeded,
		},
		"a failure with retries left": {
			setup: imageRunning,
			op:    finish("image", 1, false, "connection reset", 2*minute),
			want: []Transition{
				tr("image", Running, Failed, 1, "connection reset", 2*minute),
				tr("image", Failed, Pending, 1, "retry 1 of 2 after 5s", 2*minute),
			},
			status: Running,
			actions: map[string]ActionState{
				"image": {Name: "image", Status: Pending, Attempt: 1, StartedAt: at(minute), FinishedAt: at(2 * minute),
					Message: "connection reset", NotBefore: at(2*minute + 5*sec)},
			},
		},
		"a failure without retries fails the workflow": {
			setup: []op{start("wipe", 1, 0)},
			op:    finish("wipe", 1, false, "no disk", minute),
			want: append(append([]Transition{tr("wipe", Running, Failed, 1, "no disk", minute)},
				skipped(wipeFailed, minute, "image", "config", "reboot")...),
				wtr(Running, Failed, wipeFailed, minute)),
			status: Failed,
			actions: map[string]ActionState{
				"wipe":  {Name: "wipe", Status: Failed, Attempt: 1, StartedAt: t0, FinishedAt: at(minute), Message: "no disk"},
				"image": {Name: "image", Status: Skipped, Message: wipeFailed},
			},
		},
		"a failure without a message": {
			setup:   []op{start("wipe", 1, 0)},
			op:      finish("wipe", 1, false, "", minute),
			want:    append(append([]Transition{tr("wipe", Running, Failed, 1, "", minute)}, skipped("action wipe failed", minute, "image", "config", "reboot")...), wtr(Running, Failed, "action wipe failed", minute)),
			actions: map[string]ActionState{"wipe": {Name: "wipe", Status: Failed, Attempt: 1, StartedAt: t0, FinishedAt: at(minute)}},
		},
		"the last failure with continue": {
			plan:   lenient(),
			setup:  []op{start("inventory", 1, 0), finish("inventory", 1, false, "no lshw", sec), start("inventory", 2, 6*sec)},
			op:     finish("inventory", 2, false, "no lshw", 7*sec),
			want:   []Transition{tr("inventory", Running, Failed, 2, "no lshw", 7*sec)},
			status: Running,
		},
		"a failure aborts the actions running alongside": {
			plan:  diamond(),
			setup: []op{start("prep", 1, 0), finish("prep", 1, true, "", sec), start("left", 1, 2*sec), start("right", 1, 2*sec)},
			op:    finish("left", 1, false, "exit status 1", 3*sec),
			want: []Transition{
				tr("left", Running, Failed, 1, "exit status 1", 3*sec),
				tr("right", Running, Failed, 1, "aborted: action left failed: exit status 1", 3*sec),
				tr("join", Pending, Skipped, 0, "action left failed: exit status 1", 3*sec),
				wtr(Running, Failed, "action left failed: exit status 1", 3*sec),
			},
			actions: map[string]ActionState{
				"right": {Name: "right", Status: Failed, Attempt: 1, StartedAt: at(2 * sec), FinishedAt: at(3 * sec), Message: "aborted: action left failed: exit status 1"},
			},
		},
		"duplicate success": {
			setup: []op{start("wipe", 1, 0), finish("wipe", 1, true, "", minute)},
			op:    finish("wipe", 1, true, "", 2*minute),
		},
		"duplicate of the success that ended the workflow": {
			setup: append(rebootRunning[:7:7], finish("reboot", 1, true, "", 6*minute)),
			op:    finish("reboot", 1, true, "", 7*minute),
		},
		"duplicate of the failure that ended the workflow": {
			setup: []op{start("wipe", 1, 0), finish("wipe", 1, false, "no disk", minute)},
			op:    finish("wipe", 1, false, "no disk", 2*minute),
		},
		"duplicate failure during the backoff": {
			setup: imageRetrying,
			op:    finish("image", 1, false, "connection reset", 2*minute+sec),
		},
		"a late failure of an attempt that timed out": {
			setup: append(imageRunning[:3:3], tick(11*minute)),
			op:    finish("image", 1, false, "killed", 11*minute+sec),
		},
		"a late failure of an earlier attempt while a retry runs": {
			setup:   append(imageRetrying[:4:4], start("image", 2, 3*minute)),
			op:      finish("image", 1, false, "connection reset", 3*minute+sec),
			actions: map[string]ActionState{"image": {Name: "image", Status: Running, Attempt: 2, StartedAt: at(3 * minute)}},
		},
		"a late failure of an aborted action": {
			plan:  diamond(),
			setup: []op{start("prep", 1, 0), finish("prep", 1, true, "", sec), start("left", 1, 2*sec), start("right", 1, 2*sec), finish("left", 1, false, "", 3*sec)},
			op:    finish("right", 1, false, "interrupted", 4*sec),
		},
		"a late success of an aborted action": {
			plan:    diamond(),
			setup:   []op{start("prep", 1, 0), finish("prep", 1, true, "", sec), start("left", 1, 2*sec), start("right", 1, 2*sec), finish("left", 1, false, "", 3*sec)},
			op:      finish("right", 1, true, "", 4*sec),
			err:     ErrConflict,
			errText: "workflow: report conflicts with the recorded result: attempt 1 of right did not succeed",
		},
		"a late success of an attempt that timed out": {
			setup:   append(imageRunning[:3:3], tick(11*minute)),
			op:      finish("image", 1, true, "", 11*minute+sec),
			err:     ErrConflict,
			errText: "workflow: report conflicts with the recorded result: attempt 1 of image did not succeed",
		},
		"a success of an earlier attempt": {
			setup: append(imageRetrying[:4:4], start("image", 2, 3*minute)),
			op:    finish("image", 1, true, "", 3*minute+sec),
			err:   ErrConflict,
		},
		"a failure after a success": {
			setup:   []op{start("wipe", 1, 0), finish("wipe", 1, true, "", minute)},
			op:      finish("wipe", 1, false, "", 2*minute),
			err:     ErrConflict,
			errText: "workflow: report conflicts with the recorded result: attempt 1 of wipe succeeded",
		},
		"an action that has not started": {
			op:      finish("wipe", 1, true, "", 0),
			err:     ErrNotRunning,
			errText: "workflow: action is not running: attempt 1 of wipe has not started",
		},
		"an attempt that has not started": {
			setup: []op{start("wipe", 1, 0)},
			op:    finish("wipe", 2, true, "", minute),
			err:   ErrNotRunning,
		},
		"an action skipped in a finished workflow": {
			setup: []op{start("wipe", 1, 0), finish("wipe", 1, false, "no disk", minute)},
			op:    finish("image", 1, true, "", 2*minute),
			err:   ErrFinished,
		},
		"attempt zero": {
			setup: []op{start("wipe", 1, 0)},
			op:    finish("wipe", 0, true, "", minute),
			err:   ErrInvalid,
		},
		"an unknown action": {
			op:  finish("format", 1, true, "", 0),
			err: ErrUnknownAction,
		},
	})
}

func TestTick(t *testing.T) {
	const deadline = "deadline 2026-03-01T10:30:00Z passed"
	runCases(t, map[string]tcase{
		"nothing due": {
			setup: []op{start("wipe", 1, 0)},
			op:    tick(59 * sec),
		},
		"a timeout with retries left": {
			setup: imageRunning,
			op:    tick(11 * minute),
			want: []Transition{
				tr("image", Running, TimedOut, 1, "timed out after 10m0s", 11*minute),
				tr("image", TimedOut, Pending, 1, "retry 1 of 2 after 5s", 11*minute),
			},
			status: Running,
			actions: map[string]ActionState{
				"image": {Name: "image", Status: Pending, Attempt: 1, StartedAt: at(minute), FinishedAt: at(11 * minute),
					Message: "timed out after 10m0s", NotBefore: at(11*minute + 5*sec)},
			},
		},
		"a timeout without retries times the workflow out": {
			setup: []op{start("wipe", 1, 0)},
			op:    tick(minute),
			want: []Transition{
				tr("wipe", Running, TimedOut, 1, "timed out after 1m0s", minute),
				tr("image", Pending, Skipped, 0, "action wipe timed out after 1m0s", minute),
				tr("config", Pending, Skipped, 0, "action wipe timed out after 1m0s", minute),
				tr("reboot", Pending, Skipped, 0, "action wipe timed out after 1m0s", minute),
				wtr(Running, TimedOut, "action wipe timed out after 1m0s", minute),
			},
			status: TimedOut,
		},
		"a timeout with continue": {
			plan:   lenient(),
			setup:  []op{start("inventory", 1, 0), start("wipe", 1, 0), tick(minute), start("inventory", 2, minute+5*sec)},
			op:     tick(2*minute + 5*sec),
			want:   []Transition{tr("inventory", Running, TimedOut, 2, "timed out after 1m0s", 2*minute+5*sec)},
			status: Running,
		},
		"the deadline": {
			deadline: 30 * minute,
			setup:    imageRunning,
			op:       tick(30 * minute),
			want: []Transition{
				tr("image", Running, TimedOut, 1, "workflow deadline passed", 30*minute),
				tr("config", Pending, Skipped, 0, deadline, 30*minute),
				tr("reboot", Pending, Skipped, 0, deadline, 30*minute),
				wtr(Running, TimedOut, deadline, 30*minute),
			},
			status: TimedOut,
		},
		"the deadline of a workflow that never started": {
			deadline: 30 * minute,
			op:       tick(31 * minute),
			want: []Transition{
				tr("wipe", Pending, Skipped, 0, deadline, 31*minute),
				tr("image", Pending, Skipped, 0, deadline, 31*minute),
				tr("config", Pending, Skipped, 0, deadline, 31*minute),
				tr("reboot", Pending, Skipped, 0, deadline, 31*minute),
				wtr(Pending, TimedOut, deadline, 31*minute),
			},
		},
		"before the deadline": {
			deadline: 30 * minute,
			op:       tick(30*minute - 1),
		},
		"a finished workflow": {
			deadline: 30 * minute,
			setup:    []op{cancel("", 0)},
			op:       tick(time.Hour),
		},
	})
}

func TestCancel(t *testing.T) {
	const reason = "cancelled: reprovision"
	runCases(t, map[string]tcase{
		"a pending workflow": {
			op: cancel("reprovision", 0),
			want: []Transition{
				tr("wipe", Pending, Skipped, 0, reason, 0),
				tr("image", Pending, Skipped, 0, reason, 0),
				tr("config", Pending, Skipped, 0, reason, 0),
				tr("reboot", Pending, Skipped, 0, reason, 0),
				wtr(Pending, Failed, reason, 0),
			},
			status: Failed,
		},
		"a running workflow": {
			setup: imageRetrying,
			op:    cancel("reprovision", 3*minute),
			want: []Transition{
				tr("image", Pending, Skipped, 1, reason, 3*minute),
				tr("config", Pending, Skipped, 0, reason, 3*minute),
				tr("reboot", Pending, Skipped, 0, reason, 3*minute),
				wtr(Running, Failed, reason, 3*minute),
			},
			actions: map[string]ActionState{
				"image": {Name: "image", Status: Skipped, Attempt: 1, StartedAt: at(minute), FinishedAt: at(2 * minute), Message: reason},
			},
		},
		"a running action": {
			setup: imageRunning,
			op:    cancel("", 2*minute),
			want: []Transition{
				tr("image", Running, Failed, 1, "cancelled", 2*minute),
				tr("config", Pending, Skipped, 0, "cancelled", 2*minute),
				tr("reboot", Pending, Skipped, 0, "cancelled", 2*minute),
				wtr(Running, Failed, "cancelled", 2*minute),
			},
		},
		"a finished workflow": {
			setup: []op{cancel("", 0)},
			op:    cancel("again", sec),
			err:   ErrFinished,
		},
	})
}
