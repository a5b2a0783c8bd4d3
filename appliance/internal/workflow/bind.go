package workflow

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/template/parse"
)

// Bind returns copies of actions whose arguments have the workflow's
// values filled in. An argument is a text/template restricted to plain
// value lookups: "{{ .hostname }}" (with "{{-" and "-}}" trimming spaces as
// in text/template) is the value named hostname. Functions, pipelines,
// variables, conditionals, nested fields and literals are refused, as is a
// lookup of a missing value, with a *FieldError naming the argument, such
// as "actions[1].args.url". Values are not expanded again: a value
// containing "{{" is copied as it is. Arguments are bound in template
// order, and within an action by name, so the first error is always the
// same one.
func Bind(actions []Action, values map[string]string) ([]Action, error) {
	out := make([]Action, len(actions))
	for i, a := range actions {
		a.Args = maps.Clone(a.Args)
		a.Needs = slices.Clone(a.Needs)
		for _, k := range slices.Sorted(maps.Keys(a.Args)) {
			v, err := expand(a.Args[k], values)
			if err != nil {
				return nil, invalid(fmt.Sprintf("actions[%d].args.%s", i, k), "%s", err)
			}
			a.Args[k] = v
		}
		out[i] = a
	}
	return out, nil
}

// expand executes one argument's template.
func expand(s string, values map[string]string) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	// No function map: the parser refuses any function call, builtins
	// included, since those are text/template's, not the parser's.
	trees, err := parse.Parse("arg", s, "", "")
	if err != nil {
		return "", errors.New(strings.TrimPrefix(err.Error(), "template: "))
	}
	tree := trees["arg"]
	if len(trees) > 1 || (len(trees) == 1 && tree == nil) {
		return "", errors.New("templates may not define templates")
	}
	if tree == nil { // only comments or nothing
		return "", nil
	}
	var b strings.Builder
	for _, n := range tree.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			b.Write(n.Text)
		case *parse.ActionNode:
			name, ok := lookupName(n)
			if !ok {
				return "", fmt.Errorf("only value lookups such as {{ .hostname }} are allowed, not %s", n)
			}
			v, ok := values[name]
			if !ok {
				return "", fmt.Errorf("no value named %q", name)
			}
			b.WriteString(v)
		default:
			return "", fmt.Errorf("only value lookups such as {{ .hostname }} are allowed, not %s", n)
		}
	}
	return b.String(), nil
}

// lookupName returns name if n is {{ .name }}.
func lookupName(n *parse.ActionNode) (string, bool) {
	if n.Pipe == nil || len(n.Pipe.Decl) > 0 || len(n.Pipe.Cmds) != 1 {
		return "", false
	}
	args := n.Pipe.Cmds[0].Args
	if len(args) != 1 {
		return "", false
	}
	f, ok := args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return "", false
	}
	return f.Ident[0], true
}
