package syncproto

import "fmt"

// Action failure policies.
const (
	OnFailureFail     = "fail" // the workflow fails (the default)
	OnFailureContinue = "continue"
)

// Template is a workflow's plan: a directed acyclic graph of actions.
type Template struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Actions     []Action `json:"actions"`
}

// Action is one step of a template.
type Action struct {
	Name string `json:"name"`
	// Type is one of the site's installer's action types; the site
	// checks it and its Args.
	Type string `json:"type"`
	// Args are the action's arguments; values may name workflow values as
	// {{ .hostname }}.
	Args map[string]string `json:"args,omitempty"`
	// Needs lists the actions that must be done before this one starts.
	Needs   []string `json:"needs,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
	Retries int      `json:"retries,omitempty"`
	// Backoff is the delay before the first retry, doubling with each.
	Backoff Duration `json:"backoff,omitempty"`
	// OnFailure is OnFailureFail (or empty) or OnFailureContinue.
	OnFailure string `json:"on_failure,omitempty"`
}

func (*Template) Kind() string        { return KindTemplate }
func (t *Template) Key() string       { return t.Name }
func (t *Template) keyField() *string { return &t.Name }

// Validate checks the template (see Object): a name, at least one
// action, each named once, with a type, no negative timing, and needs
// that name other actions. The site checks the rest: the types and
// their arguments, and that the graph has no cycle.
func (t *Template) Validate() error {
	if err := objectName(KindTemplate, "name", t.Name); err != nil {
		return err
	}
	if len(t.Actions) == 0 {
		return invalid(KindTemplate, "actions", "a template needs at least one action")
	}
	index := make(map[string]int, len(t.Actions))
	for i, a := range t.Actions {
		if err := a.validate(fmt.Sprintf("actions[%d]", i)); err != nil {
			return err
		}
		if _, dup := index[a.Name]; dup {
			return invalid(KindTemplate, fmt.Sprintf("actions[%d].name", i), "%q is used twice", a.Name)
		}
		index[a.Name] = i
	}
	for i, a := range t.Actions {
		for j, n := range a.Needs {
			if k, ok := index[n]; !ok || k == i {
				return invalid(KindTemplate, fmt.Sprintf("actions[%d].needs[%d]", i, j), "%q names no other action", clip(n))
			}
		}
	}
	return nil
}

// validate checks one action on its own; field is its path.
func (a *Action) validate(field string) error {
	if err := objectName(KindTemplate, field+".name", a.Name); err != nil {
		return err
	}
	switch {
	case a.Type == "":
		return invalid(KindTemplate, field+".type", "is required")
	case a.Timeout < 0:
		return invalid(KindTemplate, field+".timeout", "is negative")
	case a.Backoff < 0:
		return invalid(KindTemplate, field+".backoff", "is negative")
	case a.Retries < 0:
		return invalid(KindTemplate, field+".retries", "is negative")
	}
	return oneOfOrEmpty(KindTemplate, field+".on_failure", a.OnFailure, OnFailureFail, OnFailureContinue)
}
