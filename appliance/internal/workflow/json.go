package workflow

import (
	"encoding/json"
	"fmt"
	"time"
)

// actionJSON is Action on the wire: snake_case keys, durations as "90s".
type actionJSON struct {
	Name      string            `json:"name"`
	Type      string            `json:"type"`
	Args      map[string]string `json:"args,omitempty"`
	Needs     []string          `json:"needs,omitempty"`
	Timeout   duration          `json:"timeout,omitempty"`
	Retries   int               `json:"retries,omitempty"`
	Backoff   duration          `json:"backoff,omitempty"`
	OnFailure string            `json:"on_failure,omitempty"`
}

func (a Action) MarshalJSON() ([]byte, error) {
	return json.Marshal(actionJSON{
		Name: a.Name, Type: a.Type, Args: a.Args, Needs: a.Needs,
		Timeout: duration(a.Timeout), Retries: a.Retries, Backoff: duration(a.Backoff), OnFailure: a.OnFailure,
	})
}

func (a *Action) UnmarshalJSON(b []byte) error {
	var j actionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*a = Action{
		Name: j.Name, Type: j.Type, Args: j.Args, Needs: j.Needs,
		Timeout: time.Duration(j.Timeout), Retries: j.Retries, Backoff: time.Duration(j.Backoff), OnFailure: j.OnFailure,
	}
	return nil
}

// duration is a time.Duration written as "90s"; it also reads a number of
// nanoseconds.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("duration %s: want a string such as \"90s\"", b)
		}
		*d = duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	*d = duration(v)
	return nil
}

type planJSON struct {
	Actions []Action `json:"actions"`
}

func (p *Plan) MarshalJSON() ([]byte, error) {
	return json.Marshal(planJSON{p.actions})
}

// UnmarshalJSON decodes a plan and checks it again as NewPlan does, except
// for action types and their arguments: those were checked when the plan
// was made, against the types the agent knew then.
func (p *Plan) UnmarshalJSON(b []byte) error {
	var j planJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	q, err := build(j.Actions, nil, false)
	if err != nil {
		return fmt.Errorf("decode plan: %w", err)
	}
	*p = *q
	return nil
}

// UnmarshalJSON decodes a state and checks its invariants (see Validate),
// so that the transitions can trust it.
func (st *State) UnmarshalJSON(b []byte) error {
	type plain State // without this method
	var s plain
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if err := State(s).Validate(); err != nil {
		return fmt.Errorf("decode workflow state: %w", err)
	}
	*st = State(s)
	return nil
}
