package workflow

import (
	"fmt"
	"slices"
	"time"
)

// Start records that the agent started the given attempt of an action: 1
// for the first, one more than the action's Attempt for a retry. The first
// start also starts the workflow. The action must be ready (see Ready).
//
// A start of an attempt that already started is a duplicate: it changes
// nothing and returns no error.
func Start(st State, action string, attempt int, now time.Time) (State, []Transition, error) {
	i, a, err := lookupAttempt(st, action, attempt)
	if err != nil {
		return st, nil, err
	}
	switch {
	case attempt <= a.Attempt:
		return st, nil, nil
	case st.Status.Final():
		return st, nil, fmt.Errorf("%w (%s)", ErrFinished, st.Status)
	case attempt != a.Attempt+1:
		return st, nil, fmt.Errorf("%w: %s cannot start attempt %d: its last attempt was %d", ErrConflict, action, attempt, a.Attempt)
	}
	if err := notReady(st, i, now); err != nil {
		return st, nil, err
	}
	c := begin(st, now)
	if c.st.Status == Pending {
		c.st.StartedAt = c.now
		c.workflow(Running, "")
	}
	c.st.Actions[i] = ActionState{Name: action, Status: Pending, Attempt: attempt, Lost: a.Lost, StartedAt: c.now}
	c.action(i, Running, "")
	return c.st, c.trs, nil
}

// Progress records the progress (0-100) and message the agent reports for
// the running attempt of an action. Reporting what is already recorded
// changes nothing.
func Progress(st State, action string, attempt, pct int, msg string, now time.Time) (State, []Transition, error) {
	if pct < 0 || pct > 100 {
		return st, nil, invalid("progress", "must be between 0 and 100")
	}
	i, err := lookup(st, action)
	if err != nil {
		return st, nil, err
	}
	a := st.Actions[i]
	switch {
	case st.Status.Final():
		return st, nil, fmt.Errorf("%w (%s)", ErrFinished, st.Status)
	case a.Status != Running || a.Attempt != attempt:
		return st, nil, fmt.Errorf("%w: attempt %d of %s is not running", ErrNotRunning, attempt, action)
	case a.Progress == pct && a.Message == msg:
		return st, nil, nil
	}
	c := begin(st, now)
	c.st.Actions[i].Progress = pct
	c.st.Actions[i].Message = msg
	c.trs = append(c.trs, Transition{Action: action, From: Running, To: Running, Attempt: attempt, Progress: pct, Message: msg, At: c.now})
	return c.st, c.trs, nil
}

// Finish records the result of the running attempt of an action. A
// success is final; a failure is retried after a backoff while the action
// has retries left (the action is Pending again), and is otherwise handled
// by the action's OnFailure: "fail" fails the workflow, skipping every
// pending action, and "continue" lets its dependents run.
//
// A report on an attempt that already ended is a duplicate when it agrees
// with the recorded result (ok for a success; not ok for a failure or a
// timeout): it changes nothing and returns no error. When it disagrees it
// is refused with ErrConflict.
func Finish(st State, action string, attempt int, ok bool, msg string, now time.Time) (State, []Transition, error) {
	i, a, err := lookupAttempt(st, action, attempt)
	if err != nil {
		return st, nil, err
	}
	switch {
	case attempt > a.Attempt && st.Status.Final():
		return st, nil, fmt.Errorf("%w (%s)", ErrFinished, st.Status)
	case attempt > a.Attempt:
		return st, nil, fmt.Errorf("%w: attempt %d of %s has not started", ErrNotRunning, attempt, action)
	case attempt == a.Attempt && a.Status == Running:
		c := begin(st, now)
		if ok {
			c.succeed(i, msg)
		} else {
			c.fail(i, Failed, msg)
		}
		return c.st, c.trs, nil
	}
	// The attempt has ended: only the latest may have succeeded.
	succeeded := attempt == a.Attempt && a.Status == Succeeded
	switch {
	case ok == succeeded:
		return st, nil, nil
	case ok:
		return st, nil, fmt.Errorf("%w: attempt %d of %s did not succeed", ErrConflict, attempt, action)
	default:
		return st, nil, fmt.Errorf("%w: attempt %d of %s succeeded", ErrConflict, attempt, action)
	}
}

// MaxLost bounds the lost attempts of one action that Lose retries
// apart from its Retries: past it, a lost attempt is a failure like any
// other, so that an installer that dies on every attempt (a machine that
// panics the kernel while writing its disk) still ends its workflow.
const MaxLost = 3

// Lose records that the running attempt of an action was lost: its agent
// died while it ran (killed, the machine reset) and the agent of a later
// boot found it running. Nothing the action did failed, so the action is
// retried at once, without using one of its Retries, while it has lost
// fewer than MaxLost attempts; the MaxLost+1st lost attempt is a failure
// (see Finish). The transitions say the attempt was lost, and why (msg).
//
// A report on an attempt that already ended is a duplicate unless the
// attempt succeeded (ErrConflict), as a failure's is.
func Lose(st State, action string, attempt int, msg string, now time.Time) (State, []Transition, error) {
	i, a, err := lookupAttempt(st, action, attempt)
	if err != nil {
		return st, nil, err
	}
	if attempt != a.Attempt || a.Status != Running || a.Lost >= MaxLost {
		return Finish(st, action, attempt, false, lostMessage(msg), now)
	}
	c := begin(st, now)
	c.action(i, Failed, lostMessage(msg))
	l := &c.st.Actions[i]
	l.FinishedAt, l.Message = c.now, lostMessage(msg)
	l.Lost++
	l.NotBefore = c.now
	c.action(i, Pending, fmt.Sprintf("retry after lost attempt %d (%d of %d lost attempts retried apart from the action's retries)",
		attempt, l.Lost, MaxLost))
	return c.st, c.trs, nil
}

// lostMessage is the message of a lost attempt.
func lostMessage(msg string) string {
	if msg == "" {
		return "lost"
	}
	return "lost: " + msg
}

// Tick applies the passing of time up to now: once the workflow's deadline
// has passed, the workflow times out, its running actions time out and its
// pending ones are skipped; otherwise each running attempt past its
// timeout (now ≥ start + timeout) times out, and is retried or handled
// like a failure (see Finish). Tick changes nothing in a finished workflow.
func Tick(st State, now time.Time) (State, []Transition) {
	if st.Status.Final() {
		return st, nil
	}
	c := begin(st, now)
	if pastDeadline(st, c.now) {
		reason := fmt.Sprintf("deadline %s passed", st.Deadline.Format(time.RFC3339))
		c.end(TimedOut, reason, TimedOut, "workflow deadline passed")
		return c.st, c.trs
	}
	for i, a := range st.Actions {
		t := st.Plan.actions[i].Timeout
		if c.st.Status.Final() {
			break
		}
		if a.Status == Running && t > 0 && !c.now.Before(a.StartedAt.Add(t)) {
			c.fail(i, TimedOut, "timed out after "+t.String())
		}
	}
	if len(c.trs) == 0 {
		return st, nil
	}
	return c.st, c.trs
}

// Cancel ends a workflow that has not finished: it fails with the reason
// "cancelled: <reason>", its running actions fail and its pending ones are
// skipped.
func Cancel(st State, reason string, now time.Time) (State, []Transition, error) {
	if st.Status.Final() {
		return st, nil, fmt.Errorf("%w (%s)", ErrFinished, st.Status)
	}
	r := "cancelled"
	if reason != "" {
		r += ": " + reason
	}
	c := begin(st, now)
	c.end(Failed, r, Failed, r)
	return c.st, c.trs, nil
}

func lookup(st State, name string) (int, error) {
	if st.Plan != nil {
		if i, ok := st.Plan.index[name]; ok {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownAction, name)
}

// change builds a new State from an old one, recording its transitions.
type change struct {
	st  State
	now time.Time
	trs []Transition
}

// begin copies st, which is never modified, and fixes the time: in UTC,
// without a monotonic reading, as every node of a site decodes it.
func begin(st State, now time.Time) *change {
	st.Actions = slices.Clone(st.Actions)
	return &change{st: st, now: now.UTC()}
}

// action records the transition of action i to status `to`.
func (c *change) action(i int, to Status, msg string) {
	a := &c.st.Actions[i]
	c.trs = append(c.trs, Transition{Action: a.Name, From: a.Status, To: to, Attempt: a.Attempt, Message: msg, At: c.now})
	a.Status = to
}

// workflow records the transition of the workflow to status `to`.
func (c *change) workflow(to Status, reason string) {
	c.trs = append(c.trs, Transition{From: c.st.Status, To: to, Message: reason, At: c.now})
	c.st.Status = to
}

func (c *change) succeed(i int, msg string) {
	c.action(i, Succeeded, msg)
	a := &c.st.Actions[i]
	a.FinishedAt, a.Progress, a.Message = c.now, 100, msg
	c.settle()
}

// fail ends the running attempt of action i as Failed or TimedOut, then
// retries the action or applies its OnFailure.
func (c *change) fail(i int, status Status, msg string) {
	spec := c.st.Plan.actions[i]
	c.action(i, status, msg)
	a := &c.st.Actions[i]
	a.FinishedAt, a.Message = c.now, msg
	if failed := a.Attempt - a.Lost; failed <= spec.Retries {
		d := spec.RetryDelay(failed)
		a.NotBefore = c.now.Add(d)
		c.action(i, Pending, fmt.Sprintf("retry %d of %d after %s", failed, spec.Retries, d))
		return
	}
	if spec.OnFailure == OnFailureContinue {
		c.settle()
		return
	}
	reason := fmt.Sprintf("action %s failed", spec.Name)
	if status == TimedOut {
		reason = fmt.Sprintf("action %s %s", spec.Name, msg)
	} else if msg != "" {
		reason += ": " + msg
	}
	c.end(status, reason, Failed, "aborted: "+reason)
}

// settle ends the workflow with success once every action is done.
func (c *change) settle() {
	for i := range c.st.Actions {
		if !done(c.st, i) {
			return
		}
	}
	c.st.FinishedAt = c.now
	c.workflow(Succeeded, "")
}

// end ends the workflow with status and reason: each running action's
// status becomes `running`, with message msg, and each pending action is
// skipped.
func (c *change) end(status Status, reason string, running Status, msg string) {
	for i, a := range c.st.Actions {
		switch a.Status {
		case Running:
			c.action(i, running, msg)
			c.st.Actions[i].FinishedAt = c.now
			c.st.Actions[i].Message = msg
		case Pending:
			c.action(i, Skipped, reason)
			c.st.Actions[i].Message = reason
			c.st.Actions[i].NotBefore = time.Time{}
		}
	}
	c.st.Reason = reason
	c.st.FinishedAt = c.now
	c.workflow(status, reason)
}

// lookupAttempt finds a report's action and checks its attempt number.
func lookupAttempt(st State, action string, attempt int) (int, ActionState, error) {
	if attempt < 1 {
		return 0, ActionState{}, invalid("attempt", "must be at least 1")
	}
	i, err := lookup(st, action)
	if err != nil {
		return 0, ActionState{}, err
	}
	return i, st.Actions[i], nil
}
