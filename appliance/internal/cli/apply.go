package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/appliance/internal/client"
	cclient "github.com/outposthq/outpost/central/client"
)

// doc is one object of an applied file, checked and ready to send.
type doc struct {
	where string // "FILE: document 2 (line 7)", where the object starts
	kind  *kind
	key   string // "m1"; "" for settings
	site  string // at central, the site of a perSite kind's object ("" if the document names none)
	// placement is a catalogue image's sites: and site_labels: (nil if
	// the document has neither).
	placement *cclient.Placement
	ref       string          // "machine/m1"
	body      json.RawMessage // the object, without its kind
}

// path is where the object is PUT.
func (d *doc) path() string {
	if d.kind.key == "" {
		return "/v1/" + d.kind.plural
	}
	return "/v1/" + d.kind.plural + "/" + url.PathEscape(d.key)
}

// runApply creates or replaces the objects of every file given. It checks
// them all first and applies nothing if any is bad.
func runApply(e *env, args []string) error {
	fs := e.flagSet("apply")
	var files []string
	fs.Func("f", "", func(v string) error { files = append(files, v); return nil })
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if len(files) == 0 {
		return usagef("apply: -f FILE is required")
	}
	t, err := e.resolveTarget()
	if err != nil {
		return err
	}
	if t.central {
		return e.centralApply(files)
	}
	docs, err := e.load(files, kinds)
	if err != nil {
		return err
	}
	c, _, err := e.client()
	if err != nil {
		return err
	}
	return e.applyAll(docs, func(d *doc) (string, error) {
		status, err := c.DoStatus(e.ctx, http.MethodPut, d.path(), d.body, nil)
		if status == http.StatusCreated {
			return "created", err
		}
		return "configured", err
	})
}

// load reads and checks every document of files. It reports each problem
// on stderr and fails if there was any. The documents come back in the
// order of the set's kinds, so that an object comes after those it
// refers to.
func (e *env) load(files []string, set kindSet) ([]*doc, error) {
	var docs []*doc
	var problems []error
	for _, f := range files {
		srcs, err := e.sources(f)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, src := range srcs {
			ds, errs := parseFile(src.name, src.data, set)
			docs = append(docs, ds...)
			problems = append(problems, errs...)
		}
	}
	problems = append(problems, duplicates(docs)...)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(e.stderr, "outpost: %v\n", p)
		}
		return nil, fmt.Errorf("nothing was applied: %d problem(s)", len(problems))
	}
	if len(docs) == 0 {
		return nil, errors.New("no objects found")
	}
	slices.SortStableFunc(docs, func(a, b *doc) int {
		return slices.Index(set, a.kind) - slices.Index(set, b.kind)
	})
	return docs, nil
}

// source is one file's name and contents.
type source struct {
	name string
	data []byte
}

// sources reads what a -f argument names: "-" is stdin, a directory is
// its *.yaml, *.yml and *.json files in name order.
func (e *env) sources(arg string) ([]source, error) {
	if arg == "-" {
		data, err := io.ReadAll(e.stdin)
		return []source{{name: "<stdin>", data: data}}, err
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		data, err := os.ReadFile(arg)
		return []source{{name: arg, data: data}}, err
	}
	entries, err := os.ReadDir(arg)
	if err != nil {
		return nil, err
	}
	var out []source
	for _, ent := range entries {
		ext := filepath.Ext(ent.Name())
		if ent.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		name := filepath.Join(arg, ent.Name())
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, source{name: name, data: data})
	}
	return out, nil
}

// duplicates reports objects defined more than once.
func duplicates(docs []*doc) []error {
	var errs []error
	seen := map[string]*doc{}
	for _, d := range docs {
		// At central, two sites may each have a machine of that id.
		id := d.site + "/" + d.ref
		if first, ok := seen[id]; ok {
			errs = append(errs, fmt.Errorf("%s: %s is also defined in %s", d.where, d.ref, first.where))
			continue
		}
		seen[id] = d
	}
	return errs
}

// applyAll applies each object with put, which says what it did
// ("created"). An object the API refuses is reported and the others are
// still applied; a failure to reach the API stops at once.
func (e *env) applyAll(docs []*doc, put func(d *doc) (string, error)) error {
	failed := 0
	for _, d := range docs {
		what, err := put(d)
		var ae *client.Error
		switch {
		case errors.As(err, &ae):
			fmt.Fprintf(e.stderr, "outpost: %s: %v\n", d.ref, ae)
			failed++
		case err != nil:
			return fmt.Errorf("%s: %w", d.ref, err)
		default:
			fmt.Fprintf(e.stdout, "%s %s\n", d.ref, what)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d objects were not applied", failed, len(docs))
	}
	return nil
}

// chunk is one YAML document of a file and the line it starts on.
type chunk struct {
	text []byte
	line int
}

// split cuts a file into documents at the lines that are exactly "---".
func split(data []byte) []chunk {
	var out []chunk
	cur := chunk{line: 1}
	for i, line := range bytes.SplitAfter(data, []byte("\n")) {
		if string(bytes.TrimRight(line, " \t\r\n")) == "---" {
			out = append(out, cur)
			cur = chunk{line: i + 2}
			continue
		}
		cur.text = append(cur.text, line...)
	}
	return append(out, cur)
}

// pos is where an object of a file is: its document, its item if the
// document is a list of objects, and the line it starts on.
type pos struct {
	file string
	doc  int // from 1
	item int // from 1; 0 if the document is one object
	line int
}

// at names p at line, a line of the object: "FILE: document 2 (line 9)",
// or "FILE: document 2 item 3 (line 9)".
func (p pos) at(line int) string {
	item := ""
	if p.item > 0 {
		item = fmt.Sprintf(" item %d", p.item)
	}
	return fmt.Sprintf("%s: document %d%s (line %d)", p.file, p.doc, item, line)
}

// String names p at the line the object starts on.
func (p pos) String() string { return p.at(p.line) }

// parseFile parses and checks every document of a file. Empty documents
// are skipped; a document that is a list holds one object per item.
func parseFile(name string, data []byte, set kindSet) ([]*doc, []error) {
	var docs []*doc
	var errs []error
	n := 0
	for _, ch := range split(data) {
		if len(bytes.TrimSpace(ch.text)) == 0 {
			continue
		}
		n++
		p := pos{file: name, doc: n, line: ch.line}
		// Behind as many empty lines as come before it, a document's line
		// numbers (in syntax errors and in nodes) are the file's.
		text := append(bytes.Repeat([]byte("\n"), ch.line-1), ch.text...)
		objs, err := toJSON(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		nodes := objectNodes(text, len(objs))
		for i, obj := range objs {
			ip := p
			if len(objs) > 1 {
				ip.item = i + 1
				if nodes[i] != nil {
					ip.line = nodes[i].Line
				}
			}
			d, err := parseDoc(ip, obj, newLocator(nodes[i], obj), set)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			docs = append(docs, d)
		}
	}
	return docs, errs
}

// toJSON converts one YAML (or JSON) document to JSON objects: none if it
// is empty, each item if it is a list.
func toJSON(text []byte) ([]json.RawMessage, error) {
	j, err := yaml.YAMLToJSONStrict(text)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML or JSON: %s", strings.TrimPrefix(err.Error(), "error converting YAML to JSON: "))
	}
	switch {
	case string(j) == "null":
		return nil, nil
	case j[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(j, &items); err != nil {
			return nil, err
		}
		return items, nil
	}
	return []json.RawMessage{j}, nil
}

// parseDoc turns one object into a doc: it reads and removes its kind,
// finds its key and checks it as the API would. An error names the line
// of the field at fault, found with loc, or else the object's first.
func parseDoc(p pos, obj json.RawMessage, loc locator, set kindSet) (*doc, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(obj, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("%s: not an object with a kind and fields", p)
	}
	name, err := stringField(fields, "kind")
	switch {
	case errors.Is(err, errMissing):
		return nil, fmt.Errorf("%s: kind is missing (want one of %s)", p, set.names(true))
	case err != nil:
		return nil, fmt.Errorf("%s: kind: %w", p.at(loc.line("kind", "", p.line)), err)
	}
	k, ok := set.find(name)
	if !ok || k.check == nil {
		return nil, fmt.Errorf("%s: unknown kind %q (want one of %s)", p.at(loc.line("kind", "", p.line)), name, set.names(true))
	}
	delete(fields, "kind")
	var site string
	if k.perSite {
		if site, err = stringField(fields, "site"); err != nil && !errors.Is(err, errMissing) {
			return nil, fmt.Errorf("%s: site: %w", p.at(loc.line("site", "", p.line)), err)
		}
		delete(fields, "site")
	}
	if k.prepare != nil {
		if err := k.prepare(fields); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p.at(loc.errLine(err, p.line)), k.name, err)
		}
	}
	var placement *cclient.Placement
	if k.placeable {
		if placement, err = takePlacement(fields); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", p.at(loc.errLine(err, p.line)), k.name, err)
		}
	}
	var key string
	if k.key != "" {
		key, err = stringField(fields, k.key)
		switch {
		case errors.Is(err, errMissing):
			return nil, fmt.Errorf("%s: %s: %s is missing (it names the %s)", p, k.name, k.key, k.name)
		case err != nil:
			return nil, fmt.Errorf("%s: %s: %s: %w", p.at(loc.line(k.key, "", p.line)), k.name, k.key, err)
		}
	}
	d := &doc{where: p.String(), kind: k, key: key, ref: k.ref(key), site: site, placement: placement}
	d.body, _ = json.Marshal(fields)
	if err := k.check(d.body); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p.at(loc.errLine(err, p.line)), d.ref, err)
	}
	return d, nil
}

// errMissing is stringField's answer for a field that is absent, null or
// "".
var errMissing = errors.New("missing")

// stringField reads the string field name of an object. A value of
// another type, such as YAML 1.1's yes or no (a boolean, unless quoted),
// is a type error as the API words it.
func stringField(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", errMissing
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case nil:
		return "", errMissing
	case string:
		if v == "" {
			return "", errMissing
		}
		return v, nil
	default:
		return "", fmt.Errorf("wrong type: got %s, want string", jsonType(v))
	}
}
