package cli

import "testing"

// FuzzParseFile: any file is parsed and checked without a panic, and
// every problem names a line of the file.
func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		"kind: Machine\nid: m1\ninterfaces:\n  - mac: 52:54:00:12:34:01\n  - {name: eno2, mac: 5}\n",
		"- {kind: Subnet, name: a, cidr: 10.0.0.0/33}\n- kind: Template\n  name: yes\n",
		"kind: Workflow\nid: w\nmachine_id: m\ntemplate: t\nvalues: {a.b: 5, c: &x [1], d: *x}\n---\nkind: on\n",
		"{\"kind\": \"Machine\", \"id\": \"m\", \"bmc\": {\"pasword\": 1}}\n---\n--- \n[1, 2]\n",
		"kind: Template\nname: t\nactions:\n- {name: a, type: disk.wipe, args: {device: /dev/sda}, needs: [a]}\n",
		"kind: Order\nsite: s\nkey: o\nmachine: m\naction: power\npower: off\nssh_keys: \"a\\nb\"\nvalues: {hostname: h}\n",
		"kind: Image\nname: i\nsites: [a, a]\nsite_labels: {r: [1]}\n---\nkind: Site\nid: s\nlabels: ~\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parseFile("f.yaml", data, kinds)
		parseFile("f.yaml", data, centralKinds)
	})
}
