package workflow

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fuzzInput reads choices from the fuzzer's bytes; past their end every
// choice is 0.
type fuzzInput struct{ b []byte }

func (r *fuzzInput) empty() bool { return len(r.b) == 0 }

func (r *fuzzInput) pick(n int) int {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return int(c) % n
}

// genActions makes up to 8 actions. Most are valid and need earlier
// actions; a few have a bad field, a need that is missing or makes a
// cycle, or a terminal type.
func genActions(r *fuzzInput) []Action {
	n := r.pick(9)
	var actions []Action
	for i := range n {
		a := Action{
			Name:    fmt.Sprintf("a%d", i),
			Type:    "exec",
			Args:    map[string]string{"command": "true"},
			Timeout: []time.Duration{0, 10 * time.Second, time.Minute}[r.pick(3)],
			Retries: r.pick(4),
			Backoff: []time.Duration{0, time.Second, 3 * time.Second}[r.pick(3)],
		}
		if r.pick(3) == 0 {
			a.OnFailure = OnFailureContinue
		}
		for range r.pick(3) {
			if i > 0 {
				a.Needs = append(a.Needs, fmt.Sprintf("a%d", r.pick(i)))
			}
		}
		if r.pick(4) == 0 {
			corrupt(r, &a)
		}
		actions = append(actions, a)
	}
	if n > 0 && r.pick(4) == 0 {
		last := Action{Name: "last", Type: "reboot"}
		for _, a := range actions {
			last.Needs = append(last.Needs, a.Name)
		}
		actions = append(actions, last)
	}
	return actions
}

// corrupt changes one thing in a, mostly into something NewPlan refuses.
func corrupt(r *fuzzInput, a *Action) {
	switch r.pick(12) {
	case 0:
		a.Name = []string{"a0", "a1", "", "Bad Name"}[r.pick(4)]
	case 1:
		a.Type = []string{"reboot", "kexec", "poweroff", "format", ""}[r.pick(5)]
		a.Args = nil
	case 2:
		a.Type = "disk.wipe" // without its device
	case 3:
		a.Timeout = -1
	case 4:
		a.Retries = []int{-1, MaxRetries + 1, MaxRetries}[r.pick(3)]
	case 5:
		a.Backoff = []time.Duration{-1, MaxBackoff, MaxBackoff + 1}[r.pick(3)]
	case 6:
		a.OnFailure = []string{"fail", "ignore"}[r.pick(2)]
	default: // a need on any action, possibly missing or later
		a.Needs = append(a.Needs, fmt.Sprintf("a%d", r.pick(10)))
	}
}

// kahn reports whether actions form a graph (unique names, needs that
// exist) and whether it is acyclic, by Kahn's algorithm.
func kahn(actions []Action) (graph, acyclic bool) {
	index := map[string]int{}
	for i, a := range actions {
		if _, dup := index[a.Name]; dup {
			return false, false
		}
		index[a.Name] = i
	}
	pending := make([]int, len(actions)) // needs not yet removed
	dependents := make([][]int, len(actions))
	for i, a := range actions {
		for _, n := range a.Needs {
			k, ok := index[n]
			if !ok {
				return false, false
			}
			pending[i]++
			dependents[k] = append(dependents[k], i)
		}
	}
	var queue []int
	for i := range actions {
		if pending[i] == 0 {
			queue = append(queue, i)
		}
	}
	seen := 0
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		seen++
		for _, d := range dependents[i] {
			if pending[d]--; pending[d] == 0 {
				queue = append(queue, d)
			}
		}
	}
	return true, seen == len(actions)
}

// FuzzPlan builds random graphs: NewPlan never panics and accepts only
// acyclic graphs, refusing every cyclic one; on an accepted plan, a random
// schedule of reports, ticks and duplicates keeps the invariants, and
// driving the workflow on from there always ends it.
func FuzzPlan(f *testing.F) {
	f.Add([]byte{4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 1, 2, 0, 0, 0, 0})
	f.Add([]byte{8, 1, 1, 0, 2, 2, 1, 0, 3, 2, 9, 3, 3, 0, 1, 4, 0, 2, 2, 1, 0, 3, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, repeatedly, with retries and timeouts"))
	f.Add([]byte{3, 0, 0, 0, 1, 1, 2, 3, 3, 0, 0, 0, 1, 0, 1, 2, 3, 3, 0, 0, 0, 1, 1, 2, 3, 3, 0, 4, 200, 4, 200, 4, 200, 0, 0, 2, 2, 6, 1, 1, 1, 7, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzInput{data}
		actions := genActions(r)
		p, err := NewPlan(actions, types)
		graph, acyclic := kahn(actions)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "actions") {
				t.Fatalf("NewPlan: %v is not a FieldError on actions", err)
			}
			return
		}
		if !graph || !acyclic {
			t.Fatalf("NewPlan accepted a cyclic or broken graph: %+v", actions)
		}
		var deadline time.Time
		if r.pick(4) == 0 {
			deadline = t0.Add(time.Duration(r.pick(256)) * 10 * time.Second)
		}
		st := NewState(p, deadline)
		st, now := schedule(t, r, st)
		drain(t, st, now)
	})
}

// schedule applies the reports, ticks and duplicates the input chooses,
// checking each, and returns the state and time reached.
func schedule(t *testing.T, r *fuzzInput, st State) (State, time.Time) {
	now := t0
	var last op // the latest accepted Start or Finish, to send again
	for steps := 0; !r.empty() && steps < 1000; steps++ {
		var o op
		switch r.pick(8) {
		case 0, 1:
			if ready := Ready(st, now); len(ready) > 0 {
				name := ready[r.pick(len(ready))]
				a, _ := st.Action(name)
				o = startAt(name, a.Attempt+1, now)
				last = o
			}
		case 2, 3:
			if running := runningActions(st); len(running) > 0 {
				a := running[r.pick(len(running))]
				switch r.pick(4) {
				case 0:
					o = loseAt(a.Name, a.Attempt, "restarted", now)
				default:
					o = finishAt(a.Name, a.Attempt, r.pick(3) != 0, "result", now)
				}
				last = o
			}
		case 4:
			now = now.Add(time.Duration(r.pick(256)) * time.Second)
			o = tickAt(now)
		case 5:
			if running := runningActions(st); len(running) > 0 {
				a := running[r.pick(len(running))]
				o = progressAt(a.Name, a.Attempt, r.pick(101), "", now)
			}
		case 6:
			st = anyReport(t, r, st, now)
		case 7:
			if last != nil {
				if again, trs, err := last(st); err != nil || trs != nil || cmp.Diff(st, again) != "" {
					t.Fatalf("a repeated report was not a no-op: %v, %v", err, trs)
				}
			}
			if r.pick(8) == 0 {
				got, trs, err := Cancel(st, "fuzz", now)
				if err != nil {
					if !st.Status.Final() || !errors.Is(err, ErrFinished) {
						t.Fatalf("Cancel: %v", err)
					}
					continue
				}
				checkStep(t, st, got, trs)
				st = got
			}
		}
		if o != nil {
			got, trs, err := o(st)
			if err != nil {
				t.Fatalf("a legal op failed: %v", err)
			}
			checkStep(t, st, got, trs)
			st = got
		}
	}
	return st, now
}

// anyReport sends a report of any kind, legal or not: if refused, it must
// change nothing.
func anyReport(t *testing.T, r *fuzzInput, st State, now time.Time) State {
	name := fmt.Sprintf("a%d", r.pick(10))
	attempt := r.pick(5)
	var o op
	switch r.pick(3) {
	case 0:
		o = startAt(name, attempt, now)
	case 1:
		o = finishAt(name, attempt, r.pick(2) == 0, "any", now)
	default:
		o = progressAt(name, attempt, r.pick(120)-10, "any", now)
	}
	before := deepCopy(t, st)
	got, trs, err := o(st)
	if diff := cmp.Diff(before, st); diff != "" {
		t.Fatalf("a report modified its input:\n%s", diff)
	}
	if err != nil {
		if diff := cmp.Diff(before, got); diff != "" || trs != nil {
			t.Fatalf("a refused report (%v) changed the state or made transitions %v:\n%s", err, trs, diff)
		}
		return st
	}
	checkStep(t, st, got, trs)
	return got
}

// drain drives the workflow to its end: it finishes running actions with
// success, starts ready ones, and otherwise moves time to the next retry,
// timeout or deadline. It fails if the workflow is stuck or too slow.
func drain(t *testing.T, st State, now time.Time) {
	limit := 10
	for _, a := range st.Plan.actions {
		limit += 2 * (a.Retries + 1)
	}
	for steps := 0; !st.Status.Final(); steps++ {
		if steps > limit {
			t.Fatalf("the workflow has not ended after %d steps: %+v", steps, st)
		}
		var o op
		if running := runningActions(st); len(running) > 0 {
			o = finishAt(running[0].Name, running[0].Attempt, true, "", now)
		} else if ready := Ready(st, now); len(ready) > 0 {
			a, _ := st.Action(ready[0])
			o = startAt(ready[0], a.Attempt+1, now)
		} else {
			next := NextTick(st)
			for _, a := range st.Actions {
				if a.Status == Pending && a.NotBefore.After(now) && (next.IsZero() || a.NotBefore.Before(next)) {
					next = a.NotBefore
				}
			}
			if next.IsZero() {
				t.Fatalf("stuck: nothing running, nothing ready, nothing due: %+v", st)
			}
			now = next
			o = tickAt(now)
		}
		got, trs, err := o(st)
		if err != nil {
			t.Fatalf("drain: %v", err)
		}
		checkStep(t, st, got, trs)
		st = got
	}
	if err := st.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, a := range st.Actions {
		if a.Status == Pending || a.Status == Running {
			t.Fatalf("action %s %s in a %s workflow", a.Name, a.Status, st.Status)
		}
		if st.Status == Succeeded && !done(st, i) {
			t.Fatalf("action %s %s in a succeeded workflow", a.Name, a.Status)
		}
	}
	if st.Status != Succeeded && st.Reason == "" {
		t.Fatalf("%s workflow without a reason", st.Status)
	}
}

func runningActions(st State) []ActionState {
	var running []ActionState
	for _, a := range st.Actions {
		if a.Status == Running {
			running = append(running, a)
		}
	}
	return running
}

func startAt(name string, attempt int, now time.Time) op {
	return func(st State) (State, []Transition, error) { return Start(st, name, attempt, now) }
}

func finishAt(name string, attempt int, ok bool, msg string, now time.Time) op {
	return func(st State) (State, []Transition, error) { return Finish(st, name, attempt, ok, msg, now) }
}

func loseAt(name string, attempt int, msg string, now time.Time) op {
	return func(st State) (State, []Transition, error) { return Lose(st, name, attempt, msg, now) }
}

func progressAt(name string, attempt, pct int, msg string, now time.Time) op {
	return func(st State) (State, []Transition, error) { return Progress(st, name, attempt, pct, msg, now) }
}

func tickAt(now time.Time) op {
	return func(st State) (State, []Transition, error) {
		st, trs := Tick(st, now)
		return st, trs, nil
	}
}
