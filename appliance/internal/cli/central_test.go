package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/central/testcentral"
)

// TestMain keeps the tests away from the config file and the variables
// of whoever runs them: no test reads ~/.config/outpost or a server from
// the environment unless it sets one.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-cli-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("OUTPOST_CONFIG", filepath.Join(dir, "no-config.yaml"))
	for _, v := range []string{"OUTPOST_SERVER", "OUTPOST_CENTRAL", "OUTPOST_CONTEXT", "OUTPOST_TOKEN", "OUTPOST_TOKEN_FILE"} {
		os.Unsetenv(v)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fleetYAML is what an operator applies at central: a site and its
// desired state.
const fleetYAML = `kind: site
id: fra-1
name: Frankfurt 1
---
kind: image
site: fra-1
name: debian-12
url: https://images.example.com/debian-12.raw.gz
format: raw.gz
sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
---
kind: machine
site: fra-1
id: r1-s01
hostname: r1-s01
interfaces: [{mac: "52:54:00:00:00:01", boot: true}]
bmc: {address: 10.0.0.5, username: admin, password: ` + bmcPassword + `}
---
kind: order
site: fra-1
id: o1
action: provision
machine_id: r1-s01
image: debian-12
`

// central runs the CLI against central c as the admin.
func centralRun(t *testing.T, c *testcentral.Central, stdin string, args ...string) result {
	t.Helper()
	return runCLI(t, stdin, append([]string{"--central", c.URL, "--token", c.Token}, args...)...)
}

func mustOK(t *testing.T, r result) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	return r.stdout
}

// TestCentralCommands: the central commands end to end against a real
// (replicated) central: apply a site and its desired state, read them
// back, make a viewer token with the CLI and use it (reads work, writes
// get 403 and change nothing), delete an order, delete the token.
func TestCentralCommands(t *testing.T) {
	cen := testcentral.Start(t, testcentral.Replicated(t))
	r := centralRun(t, cen, fleetYAML, "apply", "-f", "-")
	out := mustOK(t, r)
	for _, want := range []string{"site/fra-1 created", "image/debian-12 created at site fra-1 (revision 1)",
		"machine/r1-s01 created at site fra-1 (revision 2)", "order/o1 created at site fra-1 (revision 3)"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("apply printed %q, want a line %q", out, want)
		}
	}
	if !strings.Contains(r.stderr, "shown only this once") || len(strings.Split(strings.TrimSpace(out), "\n")) != 5 {
		t.Errorf("apply of a new site: stdout %q, stderr %q; want its credential on a line of its own", out, r.stderr)
	}
	again := mustOK(t, centralRun(t, cen, fleetYAML, "apply", "-f", "-"))
	if !strings.Contains(again, "site/fra-1 unchanged\n") || !strings.Contains(again, "machine/r1-s01 unchanged at site fra-1\n") {
		t.Errorf("second apply: %q; want the site unchanged and no new revision", again)
	}

	sites := table(mustOK(t, centralRun(t, cen, "", "get", "sites")))
	if len(sites) != 2 || sites[1][0] != "fra-1" || sites[1][3] != "no" {
		t.Errorf("get sites: %q", sites)
	}
	var site struct {
		ID   string
		Sync struct {
			LatestRevision uint64 `json:"latest_revision"`
		}
	}
	if err := json.Unmarshal([]byte(mustOK(t, centralRun(t, cen, "", "get", "site", "fra-1", "-o", "json"))), &site); err != nil || site.Sync.LatestRevision != 3 {
		t.Errorf("get site fra-1 -o json: %+v, %v", site, err)
	}
	orders := table(mustOK(t, centralRun(t, cen, "", "get", "orders")))
	if want := [][]string{{"SITE", "ID", "ACTION", "MACHINE", "IMAGE", "TEMPLATE"}, {"fra-1", "o1", "provision", "r1-s01", "debian-12", "-"}}; !slices.EqualFunc(orders, want, slices.Equal) {
		t.Errorf("get orders: %q, want %q", orders, want)
	}
	machine := mustOK(t, centralRun(t, cen, "", "get", "machine", "r1-s01", "--site", "fra-1", "-o", "yaml"))
	if !strings.Contains(machine, "password_set: true") || !strings.Contains(machine, "site: fra-1") {
		t.Errorf("get machine -o yaml: %s", machine)
	}

	viewer := strings.TrimSpace(mustOK(t, centralRun(t, cen, "", "token", "create", "tech", "--role", "viewer", "--expires", "30d")))
	asViewer := func(stdin string, args ...string) result {
		return runCLI(t, stdin, append([]string{"--central", cen.URL, "--token", viewer}, args...)...)
	}
	if got := table(mustOK(t, asViewer("", "get", "orders", "--site", "fra-1"))); len(got) != 2 {
		t.Errorf("a viewer's get orders: %q", got)
	}
	order2 := "kind: order\nid: o2\naction: power_on\nmachine_id: r1-s01\n"
	for _, w := range [][]string{
		{"apply", "-f", "-", "--site", "fra-1"}, {"delete", "order", "o1", "--site", "fra-1"}, {"token", "list"},
		{"token", "create", "more", "--role", "admin"},
	} {
		r := asViewer(order2, w...)
		if r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
			t.Errorf("a viewer's %q: exit %d, %q; want 403", w, r.code, r.stderr)
		}
	}
	if got := table(mustOK(t, centralRun(t, cen, "", "get", "orders", "--site", "fra-1"))); len(got) != 2 || got[1][1] != "o1" {
		t.Errorf("after the viewer's writes, orders %q; want o1 alone", got)
	}

	if out := mustOK(t, centralRun(t, cen, "", "delete", "order", "o1", "--site", "fra-1")); out != "order/o1 deleted at site fra-1 (revision 4)\n" {
		t.Errorf("delete order: %q", out)
	}
	tokens := table(mustOK(t, centralRun(t, cen, "", "token", "list")))
	var techID string
	for _, row := range tokens[1:] {
		if row[1] == "tech" {
			techID = row[0]
		}
	}
	if strings.Contains(strings.Join(slices.Concat(tokens...), " "), viewer) || techID == "" {
		t.Fatalf("token list: %q", tokens)
	}
	mustOK(t, centralRun(t, cen, "", "token", "delete", techID))
	if r := asViewer("", "get", "sites"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 401") {
		t.Errorf("the deleted token: exit %d, %q", r.code, r.stderr)
	}

	status := mustOK(t, centralRun(t, cen, "", "cluster", "status"))
	if rows := table(status)[2:]; !strings.HasPrefix(status, "c1: Leader, leader c1") || len(rows) != 1 || rows[0][0] != "c1" || rows[0][4] != "yes" {
		t.Errorf("cluster status:\n%s", status)
	}

	// Central's CA rotates through the same command as a site's: the one
	// member renews under the new generation, and then finish is taken.
	begun := mustOK(t, centralRun(t, cen, "", "cluster", "rotate-ca", "begin"))
	if !strings.Contains(begun, "central CA rotation begun: generation 2 is current, 1 still trusted") {
		t.Errorf("rotate-ca begin: %q", begun)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := centralRun(t, cen, "", "cluster", "rotate-ca", "finish")
		if r.code == 0 {
			if !strings.Contains(r.stdout, "central CA rotation finished: only generation 2 is trusted") {
				t.Errorf("rotate-ca finish: %q", r.stdout)
			}
			break
		}
		if !strings.Contains(r.stderr, "c1 (generation 1)") || time.Now().After(deadline) {
			t.Fatalf("rotate-ca finish: exit %d, %s", r.code, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestCentralRefusals: what has no meaning at central, or lacks a site,
// is refused clearly, and a bad document changes nothing.
func TestCentralRefusals(t *testing.T) {
	cen := testcentral.Start(t)
	mustOK(t, centralRun(t, cen, "kind: site\nid: fra-1\n", "apply", "-f", "-"))
	for name, tc := range map[string]struct {
		args   []string
		stdin  string
		code   int
		stderr string
	}{
		"bmc":            {[]string{"bmc", "accept-certificate", "m1"}, "", 1, "central has no BMCs: use a site context"},
		"events":         {[]string{"events"}, "", 1, "use a site context"},
		"subnets":        {[]string{"get", "subnets"}, "", 1, "central keeps no subnets: they are a site's; use a site context"},
		"order no site":  {[]string{"get", "order", "o1"}, "", 2, "--site SITE is needed"},
		"apply no site":  {[]string{"apply", "-f", "-"}, "kind: order\nid: o1\naction: power_on\nmachine_id: m1\n", 1, "order/o1 names no site"},
		"bad order":      {[]string{"apply", "-f", "-", "--site", "fra-1"}, "kind: order\nid: o1\naction: explode\nmachine_id: m1\n", 1, "(line 3): order/o1: action"},
		"single cluster": {[]string{"cluster", "status"}, "", 0, ""},
		"single rotate":  {[]string{"cluster", "rotate-ca", "begin"}, "", 1, "rotate the central CA (begin): this central runs as a single node"},
		"site cmd":       {[]string{"cluster", "join", "n2", "127.0.0.1:1", "http://127.0.0.1:2"}, "", 1, "centrald -join"},
	} {
		t.Run(name, func(t *testing.T) {
			r := centralRun(t, cen, tc.stdin, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
	if out := table(mustOK(t, centralRun(t, cen, "", "get", "orders"))); len(out) != 1 {
		t.Errorf("orders after the refusals: %q", out)
	}
	if r := runCLI(t, "", "--central", "http://192.0.2.1:7443", "--token", "x", "get", "sites"); r.code != 1 || !strings.Contains(r.stderr, "only over TLS") {
		t.Errorf("a token to a plain http central off loopback: exit %d, %q", r.code, r.stderr)
	}
}

// writeTokenFile writes token into a new file in dir and returns its path.
func writeTokenFile(t *testing.T, dir, name, token string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestContexts: two contexts, a site's and central's, made with the CLI
// and switched between; the file is 0600 and never shows a token.
func TestContexts(t *testing.T) {
	n := apptest.Start(t)
	cen := testcentral.Start(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "outpost", "config.yaml")
	t.Setenv("OUTPOST_CONFIG", cfg)
	labToken := writeTokenFile(t, dir, "lab.token", n.Token)
	mustOK(t, runCLI(t, "", "context", "set", "lab", "--site", n.URL, "--token-file", labToken))
	mustOK(t, runCLI(t, "", "context", "set", "hq", "--central", cen.URL, "--token", cen.Token))
	if fi, err := os.Stat(cfg); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v; want mode 0600", fi, err)
	}
	list := mustOK(t, runCLI(t, "", "context", "list"))
	if strings.Contains(list, cen.Token) || !strings.Contains(list, "(in the config file)") {
		t.Errorf("context list shows a token, or not where it is:\n%s", list)
	}
	if yaml := mustOK(t, runCLI(t, "", "context", "list", "-o", "yaml")); strings.Contains(yaml, cen.Token) {
		t.Errorf("context list -o yaml shows a token:\n%s", yaml)
	}

	// No current context: the default site, which is not there.
	if r := runCLI(t, "", "get", "machines"); r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:7080") {
		t.Errorf("no current context: exit %d, %q", r.code, r.stderr)
	}
	mustOK(t, runCLI(t, "", "context", "use", "hq"))
	mustOK(t, runCLI(t, "kind: site\nid: fra-1\n", "apply", "-f", "-"))
	if got := table(mustOK(t, runCLI(t, "", "get", "sites"))); len(got) != 2 || got[1][0] != "fra-1" {
		t.Errorf("get sites in context hq: %q", got)
	}
	if r := runCLI(t, "", "bmc", "accept-certificate", "m1"); r.code != 1 || !strings.Contains(r.stderr, "central has no BMCs: use a site context (the server is central's, from context hq)") {
		t.Errorf("bmc in context hq: exit %d, %q", r.code, r.stderr)
	}
	mustOK(t, runCLI(t, siteYAML, "--context", "lab", "apply", "-f", "-"))
	mustOK(t, runCLI(t, "", "context", "use", "lab"))
	if got := table(mustOK(t, runCLI(t, "", "get", "machines"))); len(got) != 2 || got[1][0] != "m1" {
		t.Errorf("get machines in context lab: %q", got)
	}
	if r := runCLI(t, "", "get", "sites"); r.code != 2 || !strings.Contains(r.stderr, `unknown kind "sites"`) {
		t.Errorf("get sites at a site: exit %d, %q", r.code, r.stderr)
	}
	mustOK(t, runCLI(t, "", "context", "delete", "lab"))
	if list := table(mustOK(t, runCLI(t, "", "context", "list"))); len(list) != 2 || list[1][0] != "-" || list[1][1] != "hq" {
		t.Errorf("after deleting the current context: %q", list)
	}
}
