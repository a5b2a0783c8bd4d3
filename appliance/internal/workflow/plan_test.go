package workflow

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestNewPlan(t *testing.T) {
	// with returns install() changed by f.
	with := func(f func(a []Action) []Action) []Action { return f(install()) }
	cases := map[string]struct {
		actions []Action
		want    *FieldError // nil: accepted
	}{
		"install":  {actions: install()},
		"diamond":  {actions: diamond()},
		"lenient":  {actions: lenient()},
		"one":      {actions: []Action{{Name: "a", Type: "reboot"}}},
		"no types": {actions: []Action{{Name: "a", Type: "exec", Args: map[string]string{"command": "x", "extra": "y"}}}},
		"no actions": {
			want: &FieldError{"actions", "a plan needs at least one action"},
		},
		"no name": {
			actions: with(func(a []Action) []Action { a[1].Name = ""; return a }),
			want:    &FieldError{"actions[1].name", "is required"},
		},
		"bad name": {
			actions: with(func(a []Action) []Action { a[1].Name = "Image Write"; return a }),
			want:    &FieldError{"actions[1].name", `"Image Write" must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit`},
		},
		"name used twice": {
			actions: with(func(a []Action) []Action { a[2].Name = "wipe"; return a }),
			want:    &FieldError{"actions[2].name", `"wipe" is used twice`},
		},
		"no type": {
			actions: with(func(a []Action) []Action { a[0].Type = ""; return a }),
			want:    &FieldError{"actions[0].type", "is required"},
		},
		"unknown type": {
			actions: with(func(a []Action) []Action { a[0].Type = "disk.format"; return a }),
			want:    &FieldError{"actions[0].type", `unknown action type "disk.format"`},
		},
		"missing argument": {
			actions: with(func(a []Action) []Action { delete(a[1].Args, "url"); return a }),
			want:    &FieldError{"actions[1].args.url", "is required by type image.write"},
		},
		"negative timeout": {
			actions: with(func(a []Action) []Action { a[1].Timeout = -time.Second; return a }),
			want:    &FieldError{"actions[1].timeout", "must not be negative"},
		},
		"negative retries": {
			actions: with(func(a []Action) []Action { a[1].Retries = -1; return a }),
			want:    &FieldError{"actions[1].retries", "must be between 0 and 100"},
		},
		"too many retries": {
			actions: with(func(a []Action) []Action { a[1].Retries = 101; return a }),
			want:    &FieldError{"actions[1].retries", "must be between 0 and 100"},
		},
		"negative backoff": {
			actions: with(func(a []Action) []Action { a[1].Backoff = -time.Second; return a }),
			want:    &FieldError{"actions[1].backoff", "must be between 0 and 5m0s"},
		},
		"backoff above the cap": {
			actions: with(func(a []Action) []Action { a[1].Backoff = 6 * time.Minute; return a }),
			want:    &FieldError{"actions[1].backoff", "must be between 0 and 5m0s"},
		},
		"unknown on_failure": {
			actions: with(func(a []Action) []Action { a[1].OnFailure = "ignore"; return a }),
			want:    &FieldError{"actions[1].on_failure", `"ignore" is not one of fail, continue`},
		},
		"unknown need": {
			actions: with(func(a []Action) []Action { a[2].Needs = []string{"image", "partition"}; return a }),
			want:    &FieldError{"actions[2].needs[1]", `no action is named "partition"`},
		},
		"needs itself": {
			actions: with(func(a []Action) []Action { a[0].Needs = []string{"wipe"}; return a }),
			want:    &FieldError{"actions[0].needs[0]", "makes a cycle: wipe → wipe (each needs the next)"},
		},
		"cycle": {
			actions: with(func(a []Action) []Action { a[0].Needs = []string{"config"}; return a }),
			want:    &FieldError{"actions[1].needs[0]", "makes a cycle: wipe → config → image → wipe (each needs the next)"},
		},
		"terminal action not last": {
			actions: with(func(a []Action) []Action { a[3].Needs = []string{"image"}; return a }),
			want:    &FieldError{"actions[3].needs", `a reboot action must run last: it must need "config", directly or through other actions`},
		},
		"an action needs the terminal one": {
			actions: append(install(), Action{Name: "after", Type: "exec", Args: map[string]string{"command": "true"}, Needs: []string{"reboot"}}),
			want:    &FieldError{"actions[3].needs", `a reboot action must run last: it must need "after", directly or through other actions`},
		},
		"two terminal actions": {
			actions: []Action{{Name: "reboot", Type: "reboot"}, {Name: "off", Type: "poweroff"}},
			want:    &FieldError{"actions[0].needs", `a reboot action must run last: it must need "off", directly or through other actions`},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := deepCopyActions(tc.actions)
			p, err := NewPlan(tc.actions, types)
			if diff := cmp.Diff(in, tc.actions); diff != "" {
				t.Errorf("NewPlan modified its input (-before +after):\n%s", diff)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("NewPlan: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) || p != nil {
				t.Fatalf("NewPlan = %v, %v; want a *FieldError", p, err)
			}
			if diff := cmp.Diff(tc.want, fe); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func deepCopyActions(as []Action) []Action {
	if as == nil {
		return nil
	}
	out := make([]Action, len(as))
	for i, a := range as {
		a.Args = maps.Clone(a.Args)
		a.Needs = slices.Clone(a.Needs)
		out[i] = a
	}
	return out
}

// TestPlanDefaults checks that a plan holds copies with defaults filled in.
func TestPlanDefaults(t *testing.T) {
	in := install()
	p, err := NewPlan(in, types)
	if err != nil {
		t.Fatal(err)
	}
	in[1].Args["url"] = "changed"
	in[1].Needs[0] = "changed"
	got, ok := p.Action("image")
	if !ok {
		t.Fatal("no action image")
	}
	want := install()[1]
	want.Backoff, want.OnFailure = DefaultBackoff, OnFailureFail
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("image (-want +got):\n%s", diff)
	}
	if _, ok := p.Action("format"); ok {
		t.Error(`Action("format") found an action`)
	}
	if n := len(p.Actions()); n != 4 {
		t.Errorf("%d actions, want 4", n)
	}
}

func TestRetryDelay(t *testing.T) {
	cases := map[string]struct {
		backoff time.Duration
		attempt int
		want    time.Duration
	}{
		"default, first":     {0, 1, 5 * time.Second},
		"default, second":    {0, 2, 10 * time.Second},
		"default, sixth":     {0, 6, 160 * time.Second},
		"default, capped":    {0, 7, 5 * time.Minute},
		"default, 100th":     {0, 100, 5 * time.Minute},
		"2s, first":          {2 * time.Second, 1, 2 * time.Second},
		"2s, fourth":         {2 * time.Second, 4, 16 * time.Second},
		"cap, first":         {5 * time.Minute, 1, 5 * time.Minute},
		"1ns, no overflow":   {1, 100, 5 * time.Minute},
		"attempt 0 as first": {3 * time.Second, 0, 3 * time.Second},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := (Action{Backoff: tc.backoff}).RetryDelay(tc.attempt); got != tc.want {
				t.Errorf("RetryDelay(%d) with backoff %s = %s, want %s", tc.attempt, tc.backoff, got, tc.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	for typ, want := range map[string]bool{
		"reboot": true, "kexec": true, "poweroff": true,
		"exec": false, "image.write": false, "": false, "Reboot": false,
	} {
		if got := IsTerminal(typ); got != want {
			t.Errorf("IsTerminal(%q) = %t, want %t", typ, got, want)
		}
	}
}
