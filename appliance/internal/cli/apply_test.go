package cli_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// An apply error names the line of the field at fault, counted in the
// whole file, and the document (and item) it is in; errors about the
// object as a whole name the line it starts on.
func TestApplyErrorLines(t *testing.T) {
	parallel(t)
	const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
	tests := map[string]struct {
		in   string
		want string // the first line of stderr, without "outpost: <stdin>: "
	}{
		"type error on the field's line": {
			in:   "kind: Image\nname: debian-12\nurl: http://x/d.raw.gz\nformat: raw.gz\nsha256: " + zeros + "\n",
			want: "document 1 (line 5): image/debian-12: sha256: wrong type: got number, want string",
		},
		"type error nested, in a later document": {
			in:   "kind: Subnet\nname: c\ncidr: 10.9.0.0/24\n---\nkind: Machine\nid: m1\nbmc:\n  address: 10.0.0.5\n  password: 12345\n",
			want: "document 2 (line 9): machine/m1: bmc.password: wrong type: got number, want string",
		},
		"type error in a list item (encoding/json names no index)": {
			in:   "kind: Machine\nid: m1\ninterfaces:\n  - mac: 52:54:00:12:34:01\n  - name: eno2\n    mac: 5\n",
			want: "document 1 (line 6): machine/m1: interfaces.mac: wrong type: got number, want string",
		},
		"type error in a map (encoding/json names no key)": {
			in:   "kind: Workflow\nid: w\nmachine_id: m\ntemplate: t\nvalues:\n  x: y\n  a.b: 5\n",
			want: "document 1 (line 7): workflow/w: values: wrong type: got number, want string",
		},
		"type error in a flow list": {
			in:   "kind: Machine\nid: m1\nhostname: web1\ntags: [a, 5]\n",
			want: "document 1 (line 4): machine/m1: tags: wrong type: got number, want string",
		},
		"YAML 1.1 boolean as the name": {
			in:   "# comment\nkind: Template\nname: yes\nactions: []\n",
			want: "document 1 (line 3): template: name: wrong type: got bool, want string",
		},
		"number as the id": {
			in:   "kind: Subnet\nname: a\ncidr: 10.0.0.0/24\n---\nkind: Machine\nhostname: web1\nid: 12\n",
			want: "document 2 (line 7): machine: id: wrong type: got number, want string",
		},
		"YAML 1.1 boolean as the kind": {
			in:   "name: x\nkind: on\n",
			want: "document 1 (line 2): kind: wrong type: got bool, want string",
		},
		"missing name: the document's first line": {
			in:   "kind: Subnet\nname: a\ncidr: 10.0.0.0/24\n---\n\nkind: Template\nactions: []\n",
			want: "document 2 (line 5): template: name is missing (it names the template)",
		},
		"validation error with indices": {
			in:   "kind: Machine\nid: m1\ninterfaces:\n  - mac: 52:54:00:12:34:01\n  - name: eno2\n    mac: zz\n",
			want: `document 1 (line 6): machine/m1: interfaces[1].mac: "zz" is not a 48-bit MAC address`,
		},
		"template cycle": {
			in: "kind: Template\nname: t\nactions:\n- {name: a, type: disk.wipe, args: {device: /dev/sda}, needs: [b]}\n" +
				"- name: b\n  type: disk.wipe\n  args: {device: /dev/sda}\n  needs:\n  - a\n",
			want: "document 1 (line 9): template/t: actions[1].needs[0]: makes a cycle: a → b → a (each needs the next)",
		},
		"unknown field, nested": {
			in:   "kind: Machine\nid: m1\nbmc: {address: 10.0.0.5,\n  pasword: x}\n",
			want: "document 1 (line 4): machine/m1: pasword: unknown field",
		},
		"item of a list document": {
			in:   "- {kind: Subnet, name: a, cidr: 10.0.0.0/24}\n- kind: Subnet\n  name: b\n  cidr: 10.0.0.0/33\n",
			want: `document 1 item 2 (line 4): subnet/b: cidr: "10.0.0.0/33" is not an IPv4 prefix like 198.18.0.0/24`,
		},
		"JSON": {
			in:   "{\"kind\": \"Subnet\",\n \"name\": \"x\",\n \"cidr\": 5}\n",
			want: "document 1 (line 3): subnet/x: cidr: wrong type: got number, want string",
		},
		"through an alias": {
			in:   "kind: Machine\nid: &id m1\nhostname: *id\nbmc: {address: 10.0.0.5, password: 1}\n",
			want: "document 1 (line 4): machine/m1: bmc.password: wrong type: got number, want string",
		},
		"syntax error: the parser's line is the file's": {
			in:   "kind: Subnet\nname: a\ncidr: 10.0.0.0/24\n---\n# note\nkind: Subnet\n  name: [x\n",
			want: "document 2 (line 5): not valid YAML or JSON: yaml: line 7: mapping values are not allowed in this context",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// The file is refused before the CLI dials the server.
			r := runCLI(t, tt.in, "--server", "http://127.0.0.1:1", "--token", "x", "apply", "-f", "-")
			want := "outpost: <stdin>: " + tt.want + "\noutpost: nothing was applied: 1 problem(s)\n"
			if diff := cmp.Diff(want, r.stderr); r.code != 1 || diff != "" {
				t.Errorf("exit %d; stderr (-want +got):\n%s", r.code, diff)
			}
		})
	}
}
