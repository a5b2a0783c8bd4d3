package workflow

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"time"
)

// What an action does when it fails for good.
const (
	OnFailureFail     = "fail"     // the workflow fails (the default)
	OnFailureContinue = "continue" // dependents run as if it had succeeded
)

// Limits and defaults of an action's retries.
const (
	DefaultBackoff = 5 * time.Second // the first retry's delay
	MaxBackoff     = 5 * time.Minute // no retry waits longer
	MaxRetries     = 100
)

// Action is one step of a plan: a template's action with the workflow's
// values bound (see Bind).
type Action struct {
	Name string
	// Type names what the agent runs, such as "image.write".
	Type string
	Args map[string]string
	// Needs names the actions that must be done before this one starts.
	Needs []string
	// Timeout bounds each attempt; 0 means none.
	Timeout time.Duration
	// Retries is how many times a failed or timed-out attempt is retried.
	Retries int
	// Backoff is the delay before the first retry (DefaultBackoff if 0);
	// it doubles with every retry, up to MaxBackoff.
	Backoff time.Duration
	// OnFailure is OnFailureFail (or "") or OnFailureContinue.
	OnFailure string
}

// RetryDelay is how long after the failure of the given attempt (1 for the
// first) the next one may start: Backoff·2^(attempt-1), at most MaxBackoff.
func (a Action) RetryDelay(attempt int) time.Duration {
	d := a.Backoff
	if d <= 0 {
		d = DefaultBackoff
	}
	for n := 1; n < attempt && d < MaxBackoff; n++ {
		d *= 2
	}
	return min(d, MaxBackoff)
}

// IsTerminal reports whether actions of type t end the installer's life:
// reboot, kexec and poweroff. The agent reports such an action succeeded
// before it performs it, since it cannot report afterwards; so the engine
// treats it like any other action, and NewPlan makes sure it runs last.
func IsTerminal(t string) bool {
	switch t {
	case "reboot", "kexec", "poweroff":
		return true
	}
	return false
}

// Plan is a validated graph of actions. It is immutable: States share it.
// It encodes to JSON as {"actions": [...]}, with durations as "90s".
type Plan struct {
	actions []Action
	index   map[string]int // action name → position
	needs   [][]int        // positions of each action's needs
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// NewPlan validates actions and returns their plan. knownTypes maps each
// action type the agent runs to the arguments it requires. It refuses,
// with a *FieldError naming the field: no actions; a missing, malformed or
// repeated name; an unknown type; a missing required argument; a negative
// timeout; retries outside [0, MaxRetries]; a backoff outside
// [0, MaxBackoff]; an unknown on_failure; a need naming no action; a cycle;
// and a terminal action (see IsTerminal) that does not run last, that is,
// does not need every other action, directly or through others.
//
// The plan holds copies of the actions with defaults filled in: OnFailure
// "fail" and Backoff DefaultBackoff.
func NewPlan(actions []Action, knownTypes map[string][]string) (*Plan, error) {
	return build(actions, knownTypes, true)
}

// build is NewPlan; a plan decoded from JSON skips the type checks, as
// they were made when it was created and the known types may have changed.
func build(actions []Action, knownTypes map[string][]string, checkTypes bool) (*Plan, error) {
	if len(actions) == 0 {
		return nil, invalid("actions", "a plan needs at least one action")
	}
	p := &Plan{
		actions: make([]Action, len(actions)),
		index:   make(map[string]int, len(actions)),
		needs:   make([][]int, len(actions)),
	}
	for i, a := range actions {
		if err := check(i, a, knownTypes, checkTypes); err != nil {
			return nil, err
		}
		if _, dup := p.index[a.Name]; dup {
			return nil, invalid(fmt.Sprintf("actions[%d].name", i), "%q is used twice", a.Name)
		}
		p.index[a.Name] = i
		a.Args = maps.Clone(a.Args)
		a.Needs = slices.Clone(a.Needs)
		if a.OnFailure == "" {
			a.OnFailure = OnFailureFail
		}
		if a.Backoff == 0 {
			a.Backoff = DefaultBackoff
		}
		p.actions[i] = a
	}
	for i, a := range p.actions {
		for j, n := range a.Needs {
			k, ok := p.index[n]
			if !ok {
				return nil, invalid(fmt.Sprintf("actions[%d].needs[%d]", i, j), "no action is named %q", n)
			}
			p.needs[i] = append(p.needs[i], k)
		}
	}
	if err := p.checkAcyclic(); err != nil {
		return nil, err
	}
	if err := p.checkTerminal(); err != nil {
		return nil, err
	}
	return p, nil
}

// check validates one action on its own.
func check(i int, a Action, knownTypes map[string][]string, checkTypes bool) error {
	f := fmt.Sprintf("actions[%d]", i)
	switch {
	case a.Name == "":
		return invalid(f+".name", "is required")
	case !nameRE.MatchString(a.Name):
		return invalid(f+".name", "%q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", a.Name)
	case a.Type == "":
		return invalid(f+".type", "is required")
	case a.Timeout < 0:
		return invalid(f+".timeout", "must not be negative")
	case a.Retries < 0 || a.Retries > MaxRetries:
		return invalid(f+".retries", "must be between 0 and %d", MaxRetries)
	case a.Backoff < 0 || a.Backoff > MaxBackoff:
		return invalid(f+".backoff", "must be between 0 and %s", MaxBackoff)
	case a.OnFailure != "" && a.OnFailure != OnFailureFail && a.OnFailure != OnFailureContinue:
		return invalid(f+".on_failure", "%q is not one of fail, continue", a.OnFailure)
	}
	if !checkTypes {
		return nil
	}
	required, ok := knownTypes[a.Type]
	if !ok {
		return invalid(f+".type", "unknown action type %q", a.Type)
	}
	for _, r := range required {
		if _, ok := a.Args[r]; !ok {
			return invalid(f+".args."+r, "is required by type %s", a.Type)
		}
	}
	return nil
}

// checkAcyclic walks the graph depth first and reports the need that
// closes the first cycle found, with the cycle.
func (p *Plan) checkAcyclic() error {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]uint8, len(p.actions))
	var path []int // the actions being visited, each needing the next
	var visit func(i int) error
	visit = func(i int) error {
		state[i] = visiting
		path = append(path, i)
		for j, k := range p.needs[i] {
			switch state[k] {
			case visiting:
				cycle := ""
				for _, c := range path[slices.Index(path, k):] {
					cycle += p.actions[c].Name + " → "
				}
				return invalid(fmt.Sprintf("actions[%d].needs[%d]", i, j),
					"makes a cycle: %s%s (each needs the next)", cycle, p.actions[k].Name)
			case unvisited:
				if err := visit(k); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		state[i] = done
		return nil
	}
	for i := range p.actions {
		if state[i] == unvisited {
			if err := visit(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkTerminal makes sure that a terminal action needs every other
// action, so that nothing runs alongside or after it. Hence a plan has at
// most one terminal action, and nothing needs it.
func (p *Plan) checkTerminal() error {
	for i, a := range p.actions {
		if !IsTerminal(a.Type) {
			continue
		}
		before := p.ancestors(i)
		for k, b := range p.actions {
			if k != i && !before[k] {
				return invalid(fmt.Sprintf("actions[%d].needs", i),
					"a %s action must run last: it must need %q, directly or through other actions", a.Type, b.Name)
			}
		}
	}
	return nil
}

// ancestors returns the actions that i needs, directly or not.
func (p *Plan) ancestors(i int) []bool {
	seen := make([]bool, len(p.actions))
	stack := slices.Clone(p.needs[i])
	for len(stack) > 0 {
		k := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !seen[k] {
			seen[k] = true
			stack = append(stack, p.needs[k]...)
		}
	}
	return seen
}

// Actions returns the plan's actions in template order. The caller must
// not modify their Args or Needs.
func (p *Plan) Actions() []Action { return slices.Clone(p.actions) }

// Action returns the named action. The caller must not modify its Args or
// Needs.
func (p *Plan) Action(name string) (Action, bool) {
	i, ok := p.index[name]
	if !ok {
		return Action{}, false
	}
	return p.actions[i], true
}

// Equal reports whether p and q hold the same actions.
func (p *Plan) Equal(q *Plan) bool {
	if p == nil || q == nil {
		return p == q
	}
	return slices.EqualFunc(p.actions, q.actions, func(a, b Action) bool {
		return a.Name == b.Name && a.Type == b.Type && maps.Equal(a.Args, b.Args) &&
			slices.Equal(a.Needs, b.Needs) && a.Timeout == b.Timeout && a.Retries == b.Retries &&
			a.Backoff == b.Backoff && a.OnFailure == b.OnFailure
	})
}
