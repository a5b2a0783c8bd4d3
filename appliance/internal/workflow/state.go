package workflow

import (
	"fmt"
	"time"
)

// Status is the state of a workflow or of one of its actions.
type Status string

// Statuses. A workflow is never Skipped.
const (
	Pending   Status = "pending"
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	TimedOut  Status = "timed_out"
	Skipped   Status = "skipped"
)

// Final reports whether s is an end state: nothing changes it any more.
// An action that failed or timed out and will be retried is Pending, not
// Failed or TimedOut.
func (s Status) Final() bool {
	switch s {
	case Succeeded, Failed, TimedOut, Skipped:
		return true
	}
	return false
}

// State is a workflow's state: its plan, the workflow's status and each
// action's. It is a value: the transitions return a new State and never
// modify the one they are given. It encodes to JSON deterministically
// (times in UTC), for the replicated store.
type State struct {
	Status Status `json:"status"`
	// Reason says why the workflow failed or timed out.
	Reason string `json:"reason,omitempty"`
	// Deadline, if not zero, is when the whole workflow times out.
	Deadline   time.Time `json:"deadline,omitzero"`
	StartedAt  time.Time `json:"started_at,omitzero"`  // when the first action started
	FinishedAt time.Time `json:"finished_at,omitzero"` // when the workflow ended
	Plan       *Plan     `json:"plan"`
	// Actions holds each action's state, in the plan's order.
	Actions []ActionState `json:"actions"`
}

// ActionState is the state of one action of a workflow.
type ActionState struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Attempt counts the attempts started; the agent names the attempt it
	// reports on. It is at most Retries+1+Lost.
	Attempt int `json:"attempt,omitempty"`
	// Lost counts the attempts lost (see Lose): retried apart from the
	// action's Retries, at most MaxLost of them.
	Lost int `json:"lost,omitempty"`
	// StartedAt and FinishedAt are those of the latest attempt.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Progress (0-100) and Message are the latest reported, or the
	// result's message once the attempt ended.
	Progress int    `json:"progress,omitempty"`
	Message  string `json:"message,omitempty"`
	// NotBefore is when a retry may start, after a failed attempt.
	NotBefore time.Time `json:"not_before,omitzero"`
}

// Transition is one change of status, reported as an event. Action is ""
// for the workflow itself. A progress report is a Transition from Running
// to Running.
type Transition struct {
	Action   string    `json:"action,omitempty"`
	From     Status    `json:"from"`
	To       Status    `json:"to"`
	Attempt  int       `json:"attempt,omitempty"`
	Progress int       `json:"progress,omitempty"`
	Message  string    `json:"message,omitempty"`
	At       time.Time `json:"at"`
}

// NewState returns the state of a workflow that has not started, with an
// optional deadline (zero for none).
func NewState(p *Plan, deadline time.Time) State {
	st := State{Status: Pending, Deadline: deadline.UTC(), Plan: p, Actions: make([]ActionState, len(p.actions))}
	for i, a := range p.actions {
		st.Actions[i] = ActionState{Name: a.Name, Status: Pending}
	}
	return st
}

// Action returns the state of the named action.
func (st State) Action(name string) (ActionState, bool) {
	if st.Plan == nil {
		return ActionState{}, false
	}
	i, ok := st.Plan.index[name]
	if !ok {
		return ActionState{}, false
	}
	return st.Actions[i], true
}

// Ready returns the actions that may start at now, in template order: the
// pending actions whose needs are all done and whose backoff has elapsed.
// It returns none once the workflow is finished or its deadline has passed.
func Ready(st State, now time.Time) []string {
	var ready []string
	for i, a := range st.Actions {
		if notReady(st, i, now) == nil {
			ready = append(ready, a.Name)
		}
	}
	return ready
}

// notReady says why action i cannot start at now, or returns nil.
func notReady(st State, i int, now time.Time) error {
	a := st.Actions[i]
	switch {
	case st.Status.Final():
		return fmt.Errorf("%w (%s)", ErrFinished, st.Status)
	case a.Status != Pending:
		return fmt.Errorf("%w: %s is %s", ErrNotReady, a.Name, a.Status)
	case pastDeadline(st, now):
		return fmt.Errorf("%w: the workflow's deadline %s has passed", ErrNotReady, st.Deadline.Format(time.RFC3339))
	case now.Before(a.NotBefore):
		return fmt.Errorf("%w: %s may not be retried before %s", ErrNotReady, a.Name, a.NotBefore.Format(time.RFC3339))
	}
	for _, k := range st.Plan.needs[i] {
		if !done(st, k) {
			n := st.Actions[k]
			return fmt.Errorf("%w: %s needs %s, which is %s", ErrNotReady, a.Name, n.Name, n.Status)
		}
	}
	return nil
}

// done reports whether action i counts as done for its dependents: it
// succeeded, was skipped, or failed for good with on_failure "continue".
func done(st State, i int) bool {
	switch st.Actions[i].Status {
	case Succeeded, Skipped:
		return true
	case Failed, TimedOut:
		return st.Plan.actions[i].OnFailure == OnFailureContinue
	}
	return false
}

func pastDeadline(st State, now time.Time) bool {
	return !st.Deadline.IsZero() && !now.Before(st.Deadline)
}

// NextTick returns the earliest time at which Tick would change st: the
// first timeout of a running action or the workflow's deadline. It returns
// the zero time if no time would.
func NextTick(st State) time.Time {
	var next time.Time
	earlier := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if st.Status.Final() {
		return next
	}
	if !st.Deadline.IsZero() {
		earlier(st.Deadline)
	}
	for i, a := range st.Actions {
		if t := st.Plan.actions[i].Timeout; a.Status == Running && t > 0 {
			earlier(a.StartedAt.Add(t))
		}
	}
	return next
}
