// Package workflow is the state machine of a provisioning workflow: pure
// logic, with no I/O, no clock (every call that needs the time is given
// it), no randomness and no dependency on the store or any other appliance
// package.
//
// A template's actions, with the workflow's values bound by Bind, become a
// Plan: a validated directed acyclic graph (NewPlan). NewState makes the
// state of a workflow that has not started; the State carries its Plan, so
// it alone is the workflow's record, and a template changed later does not
// change a workflow made from it. Every change is a pure function of a
// State, a report and the time it happened:
//
//	the agent starts an attempt     Start(st, action, attempt, now)
//	it reports progress             Progress(st, action, attempt, pct, msg, now)
//	it reports the result           Finish(st, action, attempt, ok, msg, now)
//	a later agent finds it lost     Lose(st, action, attempt, msg, now)
//	the leader's timer, at NextTick Tick(st, now)
//	an operator                     Cancel(st, reason, now)
//
// Each returns the new State and the Transitions to record as events, and
// never modifies the State it is given. The leader puts the report and now
// in a Raft command; every node applies the same function to the same
// inputs and gets the same State, down to its JSON encoding, since the
// functions read no clock, draw no random numbers and visit actions in
// template order, never in map order. Ready tells the agent what to run.
//
// # Reports
//
// The agent retries a report until it is acknowledged, so a report may
// arrive twice, or late. Each report names the attempt it is about (1 for
// the first; Start names the attempt it starts), which makes every report
// idempotent: starting an attempt that already started, or finishing an
// attempt that already ended with the same result (a success; or a failure
// or timeout for ok false), is a no-op that returns no error. A report the
// state forbids returns an error and changes nothing: an unknown action
// (ErrUnknownAction), a finished workflow (ErrFinished), an action that
// cannot start (ErrNotReady), an attempt that is not running
// (ErrNotRunning), a result contradicting the recorded one, such as a late
// success after a timeout (ErrConflict), and bad input (*FieldError). Such
// an error is final: the agent stops retrying, fetches the state again
// and runs what is ready.
//
// # Terminal actions
//
// The agent cannot report after a reboot, kexec or poweroff (IsTerminal),
// so it reports such an action succeeded before it performs it, and the
// engine treats it like any other action. NewPlan makes sure it runs last:
// it must need every other action, so nothing runs alongside or after it.
//
// # Failures, retries and time
//
// An attempt ends in success (Finish ok), failure (Finish not ok) or timeout
// (Tick at or after its start plus the action's Timeout). A failed or
// timed-out attempt with retries left puts the action back to Pending with
// NotBefore set Backoff·2^(attempt-1) later (at most MaxBackoff). A lost
// attempt (Lose: its agent died while it ran, and a later one found it
// running) is retried at once apart from Retries, up to MaxLost times per
// action, then counts as a failure. Without retries left the action is Failed or TimedOut for good, and then
// OnFailure decides: "fail" ends the workflow, Failed or TimedOut with the
// reason "action X failed: <msg>" or "action X timed out after <timeout>",
// skips every pending action and marks every running one failed ("aborted:
// <reason>"); "continue" counts the action as done for its dependents.
// When every action is done the workflow has succeeded. At or after the
// workflow's Deadline, Tick times the workflow out, with its running
// actions, and skips its pending ones; Cancel fails it likewise. Times are
// stored in UTC without monotonic readings.
//
// # Invariants
//
// Every State the functions return satisfies these, and Validate checks
// them:
//
//   - The plan has at least one action, unique names, known needs, no
//     cycle, and at most one terminal action, which needs all others.
//   - Actions holds one state per plan action, in the plan's order.
//   - An action is done when it succeeded, was skipped, or failed or timed
//     out for good with on_failure "continue". Done is final.
//   - An action that started (Attempt > 0) had all its needs done, and
//     Attempt never exceeds Retries+1+Lost, Lost never MaxLost.
//   - A pending workflow has every action pending, never attempted. A
//     running workflow has no skipped action, no action failed for good
//     unless "continue", and some action not done. A finished workflow
//     (succeeded, failed, timed out) has no pending or running action, a
//     FinishedAt, and a Reason unless it succeeded; a succeeded one has
//     every action done. Nothing changes a finished workflow.
//   - Transitions chain: each From is the status the previous transition
//     of the same action (or of the workflow, Action "") left, starting
//     from pending, and the last To is the status in the State.
//   - The transitions terminate: every Start uses up one of an action's
//     finitely many attempts, so any sequence of reports and ticks with
//     time moving forward ends the workflow within sum(Retries+1+MaxLost) starts.
package workflow
