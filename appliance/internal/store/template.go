package store

import (
	"fmt"
	"time"
)

// Template is a workflow's plan: a directed acyclic graph of actions.
type Template struct {
	Meta
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Actions     []Action `json:"actions"`
}

// Action is one step of a template.
type Action struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Args are the action's arguments; values may name workflow values as
	// {{ .hostname }}.
	Args map[string]string `json:"args,omitempty"`
	// Needs lists the actions that must succeed before this one starts.
	Needs   []string `json:"needs,omitempty"`
	Timeout Duration `json:"timeout,omitempty"`
	Retries int      `json:"retries,omitempty"`
	// OnFailure is "fail" (the workflow fails, the default) or "continue".
	OnFailure string `json:"on_failure,omitempty"`
}

func (*Template) Kind() string   { return "template" }
func (t *Template) Key() string  { return t.Name }
func (*Template) bucket() []byte { return bucketTemplates }

// Validate checks names, references and that the graph has no cycle.
func (t *Template) Validate() error {
	if err := validName("name", t.Name); err != nil {
		return err
	}
	if len(t.Actions) == 0 {
		return Invalid("actions", "a template needs at least one action")
	}
	index := map[string]int{}
	for i, a := range t.Actions {
		f := fmt.Sprintf("actions[%d]", i)
		if err := validName(f+".name", a.Name); err != nil {
			return err
		}
		if _, dup := index[a.Name]; dup {
			return Invalid(f+".name", "%q is used twice", a.Name)
		}
		index[a.Name] = i
		if a.Type == "" {
			return Invalid(f+".type", "is required")
		}
		if a.Retries < 0 || a.Retries > 100 {
			return Invalid(f+".retries", "must be between 0 and 100")
		}
		if a.Timeout < 0 {
			return Invalid(f+".timeout", "must not be negative")
		}
		if a.OnFailure != "" {
			if err := validOneOf(f+".on_failure", a.OnFailure, "fail", "continue"); err != nil {
				return err
			}
		}
	}
	for i, a := range t.Actions {
		for j, n := range a.Needs {
			if _, ok := index[n]; !ok {
				return Invalid(fmt.Sprintf("actions[%d].needs[%d]", i, j), "no action is named %q", n)
			}
		}
	}
	return t.checkAcyclic(index)
}

// checkAcyclic walks the graph depth-first and reports the first cycle.
func (t *Template) checkAcyclic(index map[string]int) error {
	const (
		unvisited = iota
		visiting
		done
	)
	state := make([]int, len(t.Actions))
	var visit func(i int) error
	visit = func(i int) error {
		switch state[i] {
		case visiting:
			return Invalid(fmt.Sprintf("actions[%d].needs", i), "action %q is part of a cycle", t.Actions[i].Name)
		case done:
			return nil
		}
		state[i] = visiting
		for _, n := range t.Actions[i].Needs {
			if err := visit(index[n]); err != nil {
				return err
			}
		}
		state[i] = done
		return nil
	}
	for i := range t.Actions {
		if err := visit(i); err != nil {
			return err
		}
	}
	return nil
}

// Duration is a time.Duration written as "90s" or "5m" in JSON and YAML.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

func (d *Duration) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	*d = Duration(v)
	return nil
}
