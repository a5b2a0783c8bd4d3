package cli

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/internal/errs"
	yaml3 "go.yaml.in/yaml/v3"
)

// Positions. Objects are read with sigs.k8s.io/yaml (YAML 1.1, as the
// appliance's own YAML is), which keeps no positions; the same text is
// also parsed with go.yaml.in/yaml/v3 into nodes, only to find the line
// of a field an error names. Where the two disagree on a document's shape
// (or v3 cannot parse it), errors name the line the object starts on.

// objectNodes parses text, one YAML document holding n objects, and
// returns each object's node: the document's, or each item's of a list.
// It returns n nils if the nodes do not match the objects.
func objectNodes(text []byte, n int) []*yaml3.Node {
	nodes := make([]*yaml3.Node, n)
	var root yaml3.Node
	if yaml3.Unmarshal(text, &root) != nil || root.Kind != yaml3.DocumentNode || len(root.Content) != 1 {
		return nodes
	}
	top := deref(root.Content[0])
	switch {
	case top.Kind == yaml3.SequenceNode && len(top.Content) == n:
		for i, item := range top.Content {
			nodes[i] = deref(item)
		}
	case top.Kind == yaml3.MappingNode && n == 1:
		nodes[0] = top
	}
	return nodes
}

// deref follows an alias to the node it names.
func deref(n *yaml3.Node) *yaml3.Node {
	for n != nil && n.Kind == yaml3.AliasNode {
		n = n.Alias
	}
	return n
}

// locator finds the lines of an object's fields.
type locator struct {
	node *yaml3.Node // the object's node; nil if unknown
	obj  any         // the object as JSON values, as it was checked
}

func newLocator(node *yaml3.Node, obj json.RawMessage) locator {
	l := locator{node: node}
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.UseNumber()
	if dec.Decode(&l.obj) != nil {
		l.node = nil
	}
	return l
}

// gotRE reads the JSON type of the value in store.DecodeStrict's type
// errors: "wrong type: got bool, want string".
var gotRE = regexp.MustCompile(`^wrong type: got (\w+)`)

// errLine returns the line of the field err names (a *errs.Error), or
// def if it names none or it is not found.
func (l locator) errLine(err error, def int) int {
	e, ok := errs.AsError(err)
	if !ok || e.Field == "" || l.node == nil {
		return def
	}
	if e.Message == "unknown field" {
		// encoding/json names the field alone, without its parents: the
		// first key of that name is the one it stopped at.
		if line, ok := firstKey(l.node, e.Field); ok {
			return line
		}
		return def
	}
	got := ""
	if m := gotRE.FindStringSubmatch(e.Message); m != nil {
		got = m[1]
	}
	return l.line(e.Field, got, def)
}

// line returns the line of the field at path, or def if it is not found.
// got, if not "", is the JSON type the value must have: it picks the item
// a path without list indices means.
func (l locator) line(path, got string, def int) int {
	if l.node == nil {
		return def
	}
	if line, ok := walk(l.node, l.obj, parsePath(path), got); ok {
		return line
	}
	return def
}

// step is one step of a field path: a key, or an index into a list.
type step struct {
	key   string
	index int // when key is ""
}

// parsePath splits a field path as the store names fields
// ("interfaces[1].mac", "actions[0].args.device") or as encoding/json
// does in type errors, without the indices ("interfaces.mac").
func parsePath(path string) []step {
	var steps []step
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		steps = append(steps, step{key: key})
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i < 0 {
				return nil
			}
			steps = append(steps, step{index: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return steps
}

// walk follows steps from node, and val, its JSON value, in step, and
// returns the line of the field they lead to: its key's line in a
// mapping, its own in a list. Where a key step meets a list (a path
// without indices), it tries each item in turn.
func walk(node *yaml3.Node, val any, steps []step, got string) (int, bool) {
	node = deref(node)
	if node == nil {
		return 0, false
	}
	if len(steps) == 0 {
		return leaf(node.Line, node, val, got)
	}
	s := steps[0]
	switch {
	case s.key == "":
		items, ok := val.([]any)
		if node.Kind != yaml3.SequenceNode || !ok || s.index >= len(node.Content) || s.index >= len(items) {
			return 0, false
		}
		return walk(node.Content[s.index], items[s.index], steps[1:], got)
	case node.Kind == yaml3.MappingNode:
		return walkMapping(node, val, steps, got)
	case node.Kind == yaml3.SequenceNode:
		items, _ := val.([]any)
		for i, item := range node.Content {
			if i >= len(items) {
				break
			}
			if line, ok := walk(item, items[i], steps, got); ok {
				return line, true
			}
		}
	}
	return 0, false
}

// walkMapping takes steps[0] (or the first keys of steps joined by dots:
// a workflow's values may have dots in their names) in a mapping.
func walkMapping(node *yaml3.Node, val any, steps []step, got string) (int, bool) {
	fields, ok := val.(map[string]any)
	if !ok {
		return 0, false
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k := node.Content[i]
		key := ""
		for j := 0; j < len(steps) && steps[j].key != ""; j++ {
			if j > 0 {
				key += "."
			}
			key += steps[j].key
			v, ok := fields[key]
			if k.Value != key || !ok {
				continue
			}
			rest := steps[j+1:]
			line, ok := 0, false
			if len(rest) == 0 {
				line, ok = leaf(k.Line, node.Content[i+1], v, got)
			} else {
				line, ok = walk(node.Content[i+1], v, rest, got)
			}
			if ok {
				return line, true
			}
		}
	}
	return 0, false
}

// leaf returns line, the line of node (val in JSON), if val has the type
// got. Else, since encoding/json names the field of a map or a list
// without the key or index of the value at fault, it returns the line of
// the first value inside val that has that type.
func leaf(line int, node *yaml3.Node, val any, got string) (int, bool) {
	node = deref(node)
	if got == "" || jsonType(val) == got {
		return line, true
	}
	if node == nil {
		return 0, false
	}
	switch v := val.(type) {
	case map[string]any:
		if node.Kind != yaml3.MappingNode {
			return 0, false
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k := node.Content[i]
			if cv, ok := v[k.Value]; ok {
				if line, ok := leaf(k.Line, node.Content[i+1], cv, got); ok {
					return line, true
				}
			}
		}
	case []any:
		if node.Kind != yaml3.SequenceNode {
			return 0, false
		}
		for i, item := range node.Content {
			if i >= len(v) {
				break
			}
			if line, ok := leaf(deref(item).Line, item, v[i], got); ok {
				return line, true
			}
		}
	}
	return 0, false
}

// firstKey returns the line of the first key named name, in document
// order, at any depth. It does not follow aliases: what they name comes
// first.
func firstKey(node *yaml3.Node, name string) (int, bool) {
	for i, c := range node.Content {
		if node.Kind == yaml3.MappingNode && i%2 == 0 && c.Value == name {
			return c.Line, true
		}
		if line, ok := firstKey(c, name); ok {
			return line, true
		}
	}
	return 0, false
}

// jsonType names the JSON type of a decoded value as encoding/json does
// in its type errors.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number, float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return ""
}
