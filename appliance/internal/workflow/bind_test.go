package workflow

import (
	"errors"
	"strings"
	"testing"
	"text/template"

	"github.com/google/go-cmp/cmp"
)

var values = map[string]string{
	"hostname": "web1",
	"image":    "http://198.18.0.1/images/debian.raw.zst",
	"keys":     "ssh-ed25519 AAAA... ops",
	"empty":    "",
	"braces":   "{{ .hostname }}",
}

func TestBind(t *testing.T) {
	cases := map[string]struct {
		arg  string
		want string      // the bound argument
		err  *FieldError // or the error
	}{
		"plain text":        {arg: "/dev/vda", want: "/dev/vda"},
		"lookup":            {arg: "{{ .hostname }}", want: "web1"},
		"no spaces":         {arg: "{{.hostname}}", want: "web1"},
		"in text":           {arg: "hostname: {{ .hostname }}\nkeys: [{{ .keys }}]", want: "hostname: web1\nkeys: [ssh-ed25519 AAAA... ops]"},
		"twice":             {arg: "{{ .hostname }}.{{ .hostname }}", want: "web1.web1"},
		"trim markers":      {arg: "a  {{- .hostname -}}  b", want: "aweb1b"},
		"empty value":       {arg: "[{{ .empty }}]", want: "[]"},
		"not expanded":      {arg: "{{ .braces }}", want: "{{ .hostname }}"},
		"comment":           {arg: "a{{/* note */}}b", want: "ab"},
		"only a comment":    {arg: "{{/* note */}}", want: ""},
		"single braces":     {arg: "{ .hostname }", want: "{ .hostname }"},
		"closing braces":    {arg: "}}", want: "}}"},
		"missing value":     {arg: "{{ .ipv4 }}", err: &FieldError{"actions[0].args.x", `no value named "ipv4"`}},
		"case matters":      {arg: "{{ .Hostname }}", err: &FieldError{"actions[0].args.x", `no value named "Hostname"`}},
		"function":          {arg: `{{ printf "%s" .hostname }}`, err: &FieldError{"actions[0].args.x", `arg:1: function "printf" not defined`}},
		"pipeline function": {arg: "{{ .hostname | html }}", err: &FieldError{"actions[0].args.x", `arg:1: function "html" not defined`}},
		"builtin":           {arg: "{{ index . \"hostname\" }}", err: &FieldError{"actions[0].args.x", `arg:1: function "index" not defined`}},
		"dot":               {arg: "{{ . }}", err: &FieldError{"actions[0].args.x", "only value lookups such as {{ .hostname }} are allowed, not {{.}}"}},
		"nested field":      {arg: "{{ .hostname.x }}", err: &FieldError{"actions[0].args.x", "only value lookups such as {{ .hostname }} are allowed, not {{.hostname.x}}"}},
		"literal":           {arg: `{{ "web1" }}`, err: &FieldError{"actions[0].args.x", `only value lookups such as {{ .hostname }} are allowed, not {{"web1"}}`}},
		"variable":          {arg: "{{ $h := .hostname }}{{ $h }}", err: &FieldError{"actions[0].args.x", "only value lookups such as {{ .hostname }} are allowed, not {{$h := .hostname}}"}},
		"if":                {arg: "{{ if .hostname }}x{{ end }}", err: &FieldError{"actions[0].args.x", "only value lookups such as {{ .hostname }} are allowed, not {{if .hostname}}x{{end}}"}},
		"range":             {arg: "{{ range .keys }}x{{ end }}", err: &FieldError{"actions[0].args.x", "only value lookups such as {{ .hostname }} are allowed, not {{range .keys}}x{{end}}"}},
		"define":            {arg: `{{ define "t" }}x{{ end }}`, err: &FieldError{"actions[0].args.x", "templates may not define templates"}},
		"template call":     {arg: `{{ template "t" }}`, err: &FieldError{"actions[0].args.x", `only value lookups such as {{ .hostname }} are allowed, not {{template "t"}}`}},
		"unclosed":          {arg: "{{ .hostname", err: &FieldError{"actions[0].args.x", "arg:1: unclosed action"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			in := []Action{{Name: "a", Type: "exec", Args: map[string]string{"x": tc.arg}, Needs: []string{"b"}}}
			out, err := Bind(in, values)
			if in[0].Args["x"] != tc.arg {
				t.Errorf("Bind modified its input: %q", in[0].Args["x"])
			}
			if tc.err != nil {
				var fe *FieldError
				if !errors.As(err, &fe) || out != nil {
					t.Fatalf("Bind = %v, %v; want a *FieldError", out, err)
				}
				if diff := cmp.Diff(tc.err, fe); diff != "" {
					t.Errorf("error (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Bind: %v", err)
			}
			want := []Action{{Name: "a", Type: "exec", Args: map[string]string{"x": tc.want}, Needs: []string{"b"}}}
			if diff := cmp.Diff(want, out); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestBindFirstError checks that the first error is in template order, then
// argument order, whatever the map order.
func TestBindFirstError(t *testing.T) {
	in := []Action{
		{Name: "a", Args: map[string]string{"z": "{{ .nope }}", "b": "{{ .hostname }}", "c": "{{ .nope }}"}},
		{Name: "b", Args: map[string]string{"a": "{{ .nope }}"}},
	}
	for range 20 {
		_, err := Bind(in, values)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "actions[0].args.c" {
			t.Fatalf("Bind: %v, want an error on actions[0].args.c", err)
		}
	}
}

// FuzzBind checks that Bind never panics, and that what it accepts binds
// as text/template executes it.
func FuzzBind(f *testing.F) {
	for _, s := range []string{"", "x", "{{ .hostname }}", "a{{.image}}b{{- .keys -}}", "{{ .nope }}", "{{ printf }}", "{{/* c */}}", `{{ define "x" }}{{ end }}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		out, err := Bind([]Action{{Name: "a", Args: map[string]string{"x": arg}}}, values)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Bind(%q): %v is not a FieldError", arg, err)
			}
			return
		}
		tmpl, err := template.New("arg").Option("missingkey=error").Parse(arg)
		if err != nil {
			t.Fatalf("Bind accepted %q, text/template refuses it: %v", arg, err)
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, values); err != nil {
			t.Fatalf("Bind accepted %q, text/template fails: %v", arg, err)
		}
		if got := out[0].Args["x"]; got != b.String() {
			t.Fatalf("Bind(%q) = %q, text/template gives %q", arg, got, b.String())
		}
	})
}
