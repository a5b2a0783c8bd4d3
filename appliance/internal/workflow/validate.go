package workflow

import (
	"errors"
	"fmt"
)

// Validate checks the invariants of a state (see the package
// documentation). Every state the transitions return satisfies them; a
// state decoded from JSON is checked with Validate.
func (st State) Validate() error {
	if st.Plan == nil {
		return errors.New("workflow: state has no plan")
	}
	if len(st.Actions) != len(st.Plan.actions) {
		return fmt.Errorf("workflow: state has %d actions, its plan %d", len(st.Actions), len(st.Plan.actions))
	}
	switch st.Status {
	case Pending, Running, Succeeded, Failed, TimedOut:
	default:
		return fmt.Errorf("workflow: unknown workflow status %q", st.Status)
	}
	if st.Status.Final() != !st.FinishedAt.IsZero() {
		return fmt.Errorf("workflow: %s workflow with finished_at %v", st.Status, st.FinishedAt)
	}
	if (st.Status == Failed || st.Status == TimedOut) && st.Reason == "" {
		return fmt.Errorf("workflow: %s workflow without a reason", st.Status)
	}
	allDone := true
	for i := range st.Actions {
		if err := st.validateAction(i); err != nil {
			return err
		}
		allDone = allDone && done(st, i)
	}
	if st.Status == Running && allDone {
		return errors.New("workflow: running workflow with every action done")
	}
	if st.Status == Succeeded && !allDone {
		return errors.New("workflow: succeeded workflow with an action not done")
	}
	return nil
}

func (st State) validateAction(i int) error {
	a, spec := st.Actions[i], st.Plan.actions[i]
	bad := func(format string, args ...any) error {
		return fmt.Errorf("workflow: action %s: %s", spec.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case a.Name != spec.Name:
		return bad("state of action %q in its place", a.Name)
	case a.Lost < 0 || a.Lost > MaxLost || a.Lost > a.Attempt:
		return bad("%d lost attempts of %d, at most %d", a.Lost, a.Attempt, MaxLost)
	case a.Attempt < 0 || a.Attempt > spec.Retries+1+a.Lost:
		return bad("attempt %d of at most %d", a.Attempt, spec.Retries+1+a.Lost)
	case a.Progress < 0 || a.Progress > 100:
		return bad("progress %d", a.Progress)
	}
	switch a.Status {
	case Pending, Skipped:
	case Running, Succeeded, Failed, TimedOut:
		if a.Attempt == 0 {
			return bad("%s without an attempt", a.Status)
		}
	default:
		return bad("unknown status %q", a.Status)
	}
	switch {
	case st.Status == Pending && (a.Status != Pending || a.Attempt != 0):
		return bad("%s (attempt %d) in a pending workflow", a.Status, a.Attempt)
	case st.Status.Final() && (a.Status == Pending || a.Status == Running):
		return bad("%s in a %s workflow", a.Status, st.Status)
	case st.Status == Running && a.Status == Skipped:
		return bad("skipped in a running workflow")
	case st.Status == Running && a.Status.Final() && !done(st, i):
		return bad("%s for good in a running workflow, without on_failure continue", a.Status)
	case a.Status == Pending && a.Attempt > 0 && a.NotBefore.IsZero():
		return bad("retry without a time")
	case a.Status == Pending && a.Attempt-a.Lost > spec.Retries:
		return bad("pending for retry %d with %d retries", a.Attempt-a.Lost, spec.Retries)
	}
	if a.Attempt > 0 {
		// It started, so its needs were done, and done is final.
		for _, k := range st.Plan.needs[i] {
			if !done(st, k) {
				return bad("attempt %d started while %s is %s", a.Attempt, st.Actions[k].Name, st.Actions[k].Status)
			}
		}
	}
	return nil
}
