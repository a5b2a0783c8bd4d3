package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/testcentral"
)

// siteFileYAML describes a whole site at central: the site with its
// labels, a catalogue image placed by them, two machines (one with a BMC
// password, which central seals) and orders in the form for people.
const siteFileYAML = `kind: Site
id: fra-1
name: Frankfurt 1
labels: {region: eu}
---
kind: Image
name: debian-12
url: https://images.example.com/debian-12.raw.gz
format: raw.gz
sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
site_labels: {region: eu}
---
kind: Template
site: fra-1
name: install
actions:
- {name: write, type: image.write, args: {device: /dev/sda, image: "{{ .image }}"}}
---
- kind: Machine
  site: fra-1
  id: r1-s01
  hostname: r1-s01
  interfaces: [{mac: "52:54:00:00:00:01", boot: true}]
  bmc: {address: 10.0.0.5, username: admin, password: ` + bmcPassword + `}
- kind: Machine
  site: fra-1
  id: r1-s02
  interfaces: [{mac: "52:54:00:00:00:02", boot: true}]
---
kind: Order
site: fra-1
key: r1-s01-install
machine: r1-s01
action: provision
image: debian-12
template: install
hostname: web-1
ssh_keys: ["ssh-ed25519 AAAA ops"]
user_data: "#cloud-config\n"
---
kind: Order
site: fra-1
key: r1-s02-cycle
machine: r1-s02
action: power
power: cycle
`

// lines is out's lines.
func lines(out string) []string { return strings.Split(strings.TrimSpace(out), "\n") }

// TestCentralApplyIdempotent: a file describing a whole site, applied
// at a real central, says what it created; applied again it changes
// nothing and says so per object; a changed object is updated alone.
func TestCentralApplyIdempotent(t *testing.T) {
	parallel(t)
	cen := testcentral.Start(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "fra-1.yaml", siteFileYAML)
	first := mustOK(t, centralRun(t, cen, "", "apply", "-f", file))
	for _, want := range []string{"site/fra-1 created", "image/debian-12 created in the catalogue (placed on fra-1)",
		"template/install created at site fra-1 (revision 2)", "machine/r1-s01 created at site fra-1 (revision 3)",
		"machine/r1-s02 created at site fra-1 (revision 4)", "order/r1-s01-install created at site fra-1 (revision 5)",
		"order/r1-s02-cycle created at site fra-1 (revision 6)"} {
		if !strings.Contains(first, want+"\n") {
			t.Errorf("first apply: %q; want a line %q", first, want)
		}
	}
	again := mustOK(t, centralRun(t, cen, "", "apply", "-f", file))
	if got := lines(again); len(got) != 7 {
		t.Errorf("second apply: %q, want a line per object", got)
	}
	for _, line := range lines(again) {
		if !strings.Contains(line, " unchanged") {
			t.Errorf("second apply: %q, want every object unchanged", line)
		}
	}
	images := table(mustOK(t, centralRun(t, cen, "", "get", "images")))
	if len(images) != 2 || images[1][0] != "debian-12" || images[1][3] != "region=eu" || images[1][4] != "fra-1(pending)" {
		t.Errorf("get images (the catalogue): %q", images)
	}
	// The fleet, read from central's real routes: the machines central
	// declared (their site has never connected) with the orders placed
	// for them, the site offline, the audit of what apply did.
	var fleet []struct {
		Site, ID, State string
		LastOrder       struct{ Key, Status string } `json:"last_order"`
	}
	if err := json.Unmarshal([]byte(mustOK(t, centralRun(t, cen, "", "get", "machines", "-q", "site:fra-1", "-o", "json"))), &fleet); err != nil {
		t.Fatal(err)
	}
	if len(fleet) != 2 || fleet[0].ID != "r1-s01" || fleet[0].State != "declared" || fleet[0].LastOrder.Key != "r1-s01-install" ||
		fleet[0].LastOrder.Status != "placed" || fleet[1].LastOrder.Key != "r1-s02-cycle" {
		t.Errorf("get machines -q site:fra-1: %+v", fleet)
	}
	if sites := table(mustOK(t, centralRun(t, cen, "", "get", "sites"))); len(sites) != 2 || !strings.Contains(strings.Join(sites[1], " "), "Frankfurt 1 no - 6 0 0 - declared=2") {
		t.Errorf("get sites: %q", sites)
	}
	if audit := mustOK(t, centralRun(t, cen, "", "get", "audit", "--format", "jsonl")); !strings.Contains(audit, `"action":"order.put","target":"fra-1/r1-s01-install"`) {
		t.Errorf("get audit has no entry of the order placed:\n%s", audit)
	}
	machine := mustOK(t, centralRun(t, cen, "", "get", "machine", "r1-s01", "--site", "fra-1", "-o", "yaml"))
	if !strings.Contains(machine, "password_set: true") {
		t.Errorf("the machine as central holds it:\n%s", machine)
	}
	order := mustOK(t, centralRun(t, cen, "", "get", "order", "r1-s01-install", "--site", "fra-1", "-o", "yaml"))
	for _, want := range []string{"hostname: web-1", "ssh_keys: ssh-ed25519 AAAA ops", "machine_id: r1-s01", "action: provision"} {
		if !strings.Contains(order, want) {
			t.Errorf("the order as central holds it:\n%s\nwant %q", order, want)
		}
	}

	changed := strings.Replace(siteFileYAML, "id: r1-s02\n", "id: r1-s02\n  hostname: r1-s02\n", 1)
	changed = strings.Replace(changed, "labels: {region: eu}", "labels: {region: eu, room: b}", 1)
	writeFile(t, dir, "fra-1.yaml", changed)
	third := mustOK(t, centralRun(t, cen, "", "apply", "-f", file))
	for _, want := range []string{"site/fra-1 updated (labels region=eu,room=b)", "machine/r1-s02 updated at site fra-1 (revision 7)",
		"machine/r1-s01 unchanged at site fra-1", "image/debian-12 unchanged in the catalogue"} {
		if !strings.Contains(third, want+"\n") {
			t.Errorf("apply of a changed file: %q; want a line %q", third, want)
		}
	}

	// An order cannot change once placed: apply says so, and changes
	// nothing else.
	writeFile(t, dir, "fra-1.yaml", strings.Replace(changed, "power: cycle", "power: off", 1))
	r := centralRun(t, cen, "", "apply", "-f", file)
	if r.code != 1 || !strings.Contains(r.stderr, "order/r1-s02-cycle: order r1-s02-cycle exists at site fra-1 and differs") {
		t.Errorf("a changed order: exit %d, %q", r.code, r.stderr)
	}
	r = centralRun(t, cen, "kind: Site\nid: fra-1\nname: Frankfurt 2\n", "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, `name: site fra-1 exists named "Frankfurt 1": central cannot rename a site`) {
		t.Errorf("a renamed site: exit %d, %q", r.code, r.stderr)
	}
}

// TestCentralApplyErrors: a bad document of a multi-document file is
// named by its file, document and line, and nothing is applied.
func TestCentralApplyErrors(t *testing.T) {
	parallel(t)
	cen := testcentral.Start(t)
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		yaml string
		want string
	}{
		"power":          {"kind: site\nid: fra-1\n---\nkind: order\nsite: fra-1\nkey: o1\nmachine: m1\naction: power\npower: sideways\n", "bad.yaml: document 2 (line 9): order: power: is \"sideways\""},
		"key and id":     {"kind: order\nsite: fra-1\nid: o1\nkey: o2\nmachine: m1\naction: power_on\n", "bad.yaml: document 1 (line 4): order: key"},
		"bad mac":        {"kind: site\nid: fra-1\n---\nkind: machine\nsite: fra-1\nid: m1\ninterfaces:\n- {mac: \"52:54:00\"}\n", "bad.yaml: document 2 (line 8): machine/m1: interfaces[0].mac"},
		"placed on site": {"kind: image\nsite: fra-1\nname: i1\nformat: raw\nsha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nsites: [fra-1]\n", "a site's own image (site: fra-1) has neither"},
		"labels":         {"kind: image\nname: i1\nsha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nsite_labels: [eu]\n", "bad.yaml: document 1 (line 4): image: site_labels"},
	} {
		t.Run(name, func(t *testing.T) {
			file := writeFile(t, dir, "bad.yaml", tc.yaml)
			r := centralRun(t, cen, "", "apply", "-f", file)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "nothing was applied") {
				t.Errorf("exit %d, stderr %q; want %q", r.code, r.stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.yaml")); err != nil {
		t.Fatal(err)
	}
	if sites := table(mustOK(t, centralRun(t, cen, "", "get", "sites"))); len(sites) != 1 {
		t.Errorf("sites after the refusals: %q", sites)
	}
}
