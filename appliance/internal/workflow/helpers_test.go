package workflow

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// types are the action types of the tests, with their required arguments.
var types = map[string][]string{
	"disk.wipe":   {"device"},
	"image.write": {"url", "device"},
	"file.write":  {"path", "contents"},
	"exec":        {"command"},
	"reboot":      nil,
	"kexec":       nil,
	"poweroff":    nil,
}

// install is the linear install template: wipe → image → config → reboot.
func install() []Action {
	return []Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}, Timeout: time.Minute},
		{Name: "image", Type: "image.write", Args: map[string]string{"url": "http://198.18.0.1/images/debian.raw.zst", "device": "/dev/vda"},
			Needs: []string{"wipe"}, Timeout: 10 * time.Minute, Retries: 2},
		{Name: "config", Type: "file.write", Args: map[string]string{"path": "/etc/hostname", "contents": "web1"}, Needs: []string{"image"}},
		{Name: "reboot", Type: "reboot", Needs: []string{"config"}},
	}
}

// diamond is prep → (left, right) → join.
func diamond() []Action {
	cmd := map[string]string{"command": "true"}
	return []Action{
		{Name: "prep", Type: "exec", Args: cmd},
		{Name: "left", Type: "exec", Args: cmd, Needs: []string{"prep"}},
		{Name: "right", Type: "exec", Args: cmd, Needs: []string{"prep"}},
		{Name: "join", Type: "reboot", Needs: []string{"left", "right"}},
	}
}

// lenient is inventory (on_failure continue, one retry) and wipe, then
// reboot.
func lenient() []Action {
	return []Action{
		{Name: "inventory", Type: "exec", Args: map[string]string{"command": "lshw"}, Retries: 1, Timeout: time.Minute, OnFailure: OnFailureContinue},
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/vda"}},
		{Name: "reboot", Type: "reboot", Needs: []string{"inventory", "wipe"}},
	}
}

func newState(t *testing.T, actions []Action, deadline time.Duration) State {
	t.Helper()
	p, err := NewPlan(actions, types)
	if err != nil {
		t.Fatalf("NewPlan: %v", err)
	}
	var d time.Time
	if deadline > 0 {
		d = at(deadline)
	}
	return NewState(p, d)
}

// op is one transition, at a time fixed when the op was made.
type op func(State) (State, []Transition, error)

func start(name string, attempt int, d time.Duration) op {
	return func(st State) (State, []Transition, error) { return Start(st, name, attempt, at(d)) }
}

func progress(name string, attempt, pct int, msg string, d time.Duration) op {
	return func(st State) (State, []Transition, error) { return Progress(st, name, attempt, pct, msg, at(d)) }
}

func finish(name string, attempt int, ok bool, msg string, d time.Duration) op {
	return func(st State) (State, []Transition, error) { return Finish(st, name, attempt, ok, msg, at(d)) }
}

func tick(d time.Duration) op {
	return func(st State) (State, []Transition, error) {
		st, trs := Tick(st, at(d))
		return st, trs, nil
	}
}

func cancel(reason string, d time.Duration) op {
	return func(st State) (State, []Transition, error) { return Cancel(st, reason, at(d)) }
}

// tr is a transition of an action; wtr one of the workflow.
func tr(action string, from, to Status, attempt int, msg string, d time.Duration) Transition {
	return Transition{Action: action, From: from, To: to, Attempt: attempt, Message: msg, At: at(d)}
}

func wtr(from, to Status, reason string, d time.Duration) Transition {
	return Transition{From: from, To: to, Message: reason, At: at(d)}
}

// apply runs one op that must succeed and checks the result.
func apply(t *testing.T, st State, o op) (State, []Transition) {
	t.Helper()
	before := deepCopy(t, st)
	got, trs, err := o(st)
	if err != nil {
		t.Fatalf("op: %v", err)
	}
	if diff := cmp.Diff(before, st); diff != "" {
		t.Fatalf("the op modified the state it was given (-before +after):\n%s", diff)
	}
	checkStep(t, st, got, trs)
	return got, trs
}

// do runs ops that must succeed and returns the state and every transition.
func do(t *testing.T, st State, ops ...op) (State, []Transition) {
	t.Helper()
	var all []Transition
	for _, o := range ops {
		var trs []Transition
		st, trs = apply(t, st, o)
		all = append(all, trs...)
	}
	return st, all
}

// checkStep checks that after satisfies the invariants and that trs lead
// from before to after.
func checkStep(t *testing.T, before, after State, trs []Transition) {
	t.Helper()
	if err := after.Validate(); err != nil {
		t.Fatalf("invalid state: %v", err)
	}
	status := map[string]Status{"": before.Status}
	for _, a := range before.Actions {
		status[a.Name] = a.Status
	}
	for _, tr := range trs {
		if status[tr.Action] != tr.From {
			t.Fatalf("transition %+v from %s, but %q was %s", tr, tr.From, tr.Action, status[tr.Action])
		}
		status[tr.Action] = tr.To
	}
	if status[""] != after.Status {
		t.Fatalf("transitions leave the workflow %s, the state says %s", status[""], after.Status)
	}
	for _, a := range after.Actions {
		if status[a.Name] != a.Status {
			t.Fatalf("transitions leave %s %s, the state says %s", a.Name, status[a.Name], a.Status)
		}
	}
}

// deepCopy copies st through JSON.
func deepCopy(t *testing.T, st State) State {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var c State
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("unmarshal: %v\n%s", err, b)
	}
	return c
}

// tcase is a case of a transition table: from the state that setup
// reaches, op gives either err (tested with errors.Is; errText, if set, is
// the whole message) and no change, or the transitions want, the workflow
// status and the states of the actions in actions.
type tcase struct {
	plan     []Action      // install() if nil
	deadline time.Duration // after t0; none if 0
	setup    []op
	op       op
	err      error
	errText  string
	want     []Transition
	status   Status
	actions  map[string]ActionState
}

func runCases(t *testing.T, cases map[string]tcase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			plan := tc.plan
			if plan == nil {
				plan = install()
			}
			st, _ := do(t, newState(t, plan, tc.deadline), tc.setup...)
			before := deepCopy(t, st)
			got, trs, err := tc.op(st)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.errText != "" && (err == nil || err.Error() != tc.errText) {
				t.Errorf("err = %v, want %s", err, tc.errText)
			}
			if diff := cmp.Diff(before, st); diff != "" {
				t.Fatalf("the op modified the state it was given (-before +after):\n%s", diff)
			}
			if err != nil {
				if diff := cmp.Diff(before, got); diff != "" || trs != nil {
					t.Fatalf("a refused op changed the state or made transitions %v (-before +after):\n%s", trs, diff)
				}
				return
			}
			checkStep(t, st, got, trs)
			if diff := cmp.Diff(tc.want, trs); diff != "" {
				t.Errorf("transitions (-want +got):\n%s", diff)
			}
			if tc.status != "" && got.Status != tc.status {
				t.Errorf("workflow status = %s, want %s (%s)", got.Status, tc.status, got.Reason)
			}
			for name, want := range tc.actions {
				a, _ := got.Action(name)
				if diff := cmp.Diff(want, a); diff != "" {
					t.Errorf("action %s (-want +got):\n%s", name, diff)
				}
			}
		})
	}
}

func lose(name string, attempt int, msg string, d time.Duration) op {
	return func(st State) (State, []Transition, error) { return Lose(st, name, attempt, msg, at(d)) }
}
