package store

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/workflow"
	"github.com/outposthq/outpost/internal/errs"
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
	// Type is one of the agent's action types (actions.Catalogue).
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
	// OnFailure is "fail" (the workflow fails, the default) or "continue".
	OnFailure string `json:"on_failure,omitempty"`
}

func (*Template) Kind() string   { return "template" }
func (t *Template) Key() string  { return t.Name }
func (*Template) bucket() []byte { return bucketTemplates }

// Validate checks the template as the workflow engine will run it: names,
// types the agent knows with their required arguments and no others,
// needs that name actions, no cycle, retries and timeouts in range, and a
// reboot, kexec or poweroff only as the last action. Errors name the
// field, such as actions[2].needs[0].
func (t *Template) Validate() error {
	if err := validName("name", t.Name); err != nil {
		return err
	}
	for i, a := range t.Actions {
		spec, ok := actions.Catalogue[a.Type]
		if !ok {
			continue // NewPlan names the unknown type
		}
		for _, k := range slices.Sorted(maps.Keys(a.Args)) {
			if !slices.Contains(spec.Required, k) && !slices.Contains(spec.Optional, k) {
				return errs.Invalid(fmt.Sprintf("actions[%d].args.%s", i, k), "%s takes no argument %q (it takes %v)",
					a.Type, k, append(slices.Clone(spec.Required), spec.Optional...))
			}
		}
	}
	_, err := workflow.NewPlan(t.PlanActions(), actions.Required())
	return PlanError("", err)
}

// PlanActions converts the template's actions for the workflow engine.
func (t *Template) PlanActions() []workflow.Action {
	out := make([]workflow.Action, len(t.Actions))
	for i, a := range t.Actions {
		out[i] = workflow.Action{
			Name: a.Name, Type: a.Type, Args: maps.Clone(a.Args), Needs: slices.Clone(a.Needs),
			Timeout: time.Duration(a.Timeout), Retries: a.Retries, Backoff: time.Duration(a.Backoff),
			OnFailure: a.OnFailure,
		}
	}
	return out
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
