package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cli"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
)

// bmcPassword must never appear in anything the CLI prints.
const bmcPassword = "hunter2-Sekrit-7f3a"

const siteYAML = `# a small site
kind: Machine
id: m1
hostname: web1
interfaces:
  - mac: 52:54:00:12:34:56
    boot: true
bmc:
  address: 10.0.0.5:623
  username: admin
  password: ` + bmcPassword + `
---
kind: Subnet
name: lab
cidr: 10.0.0.0/24
gateway: 10.0.0.1
pools: [{start: 10.0.0.100, end: 10.0.0.199}]
discovery: true
---
---
kind: image
name: ubuntu
url: https://images.example.com/ubuntu.raw.gz
format: raw.gz
size_bytes: 1610612736
sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
---
kind: Template
name: install
actions:
  - {name: wipe, type: disk.wipe, args: {device: /dev/sda}}
  - {name: write, type: image.write, args: {device: /dev/sda, image: "{{ .image }}"}, needs: [wipe], timeout: 10m}
`

// testSite is a single-node appliance served in-process.
type testSite struct {
	url      string
	token    string
	raftAddr string
	key      *seal.Key
	node     *cluster.Node
	log      *slog.Logger
}

func parallel(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Parallel()
	}
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago:
// Raft's TCP transport needs a concrete one to advertise.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func fastRaft(c *raft.Config) {
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
}

// openNode opens a store and a Raft node in dir, closed at cleanup.
func openNode(t *testing.T, log *slog.Logger, key *seal.Key, id, dir, raftAddr, apiURL string, bootstrap bool) *cluster.Node {
	t.Helper()
	db, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return apptest.OpenNode(t, key, cluster.Config{
		ID: id, Dir: filepath.Join(dir, "raft"), BindAddr: raftAddr, APIURL: apiURL,
		Bootstrap: bootstrap, Tuning: fastRaft, Log: log.With("node", id),
	}, db)
}

// startSite boots a one-node cluster with its API and an admin token.
func startSite(t *testing.T) *testSite {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	key, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	s := &testSite{url: "http://" + srv.Listener.Addr().String(), raftAddr: freeAddr(t), key: key, log: log}
	s.node = openNode(t, log, key, "n1", t.TempDir(), s.raftAddr, s.url, true)
	proposer := cluster.NewSite(s.node, site.ProposerConfig{Key: key})
	srv.Config.Handler = api.New(api.Config{Site: proposer.Proposer, Store: s.node.DB(), Cluster: s.node,
		SiteKey: key, Log: log}).Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for !s.node.IsLeader() {
		if ctx.Err() != nil {
			t.Fatal("no leader after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.node.RegisterSelf(ctx); err != nil {
		t.Fatal(err)
	}
	token, rec := api.NewToken("admin")
	if err := proposer.CreateToken(ctx, rec); err != nil {
		t.Fatal(err)
	}
	s.token = token
	return s
}

// result is what one run of the CLI printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the CLI against s with stdin, as the admin.
func (s *testSite) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	args = append([]string{"--server", s.url, "--token", s.token}, args...)
	return runCLI(t, stdin, args...)
}

func runCLI(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Run(t.Context(), args, strings.NewReader(stdin), &stdout, &stderr)
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: code}
	t.Logf("outpost %s: exit %d\n%s%s", shown(args), code, r.stdout, r.stderr)
	if strings.Contains(r.stdout+r.stderr, bmcPassword) {
		t.Errorf("outpost %v printed the BMC password", args)
	}
	return r
}

// shown is args for the test log, without the server and the token.
func shown(args []string) string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--server", "--token", "-server", "-token":
			i++
			continue
		}
		out = append(out, args[i])
	}
	return strings.Join(out, " ")
}

// mustRun runs the CLI and fails the test unless it succeeds.
func (s *testSite) mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := s.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("outpost %v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

// table splits a table into rows of fields.
func table(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(line))
	}
	return rows
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestApplyGetDelete(t *testing.T) {
	parallel(t)
	s := startSite(t)
	file := writeFile(t, t.TempDir(), "site.yaml", siteYAML)

	// Objects are applied in dependency order, not file order.
	want := "subnet/lab created\nimage/ubuntu created\ntemplate/install created\nmachine/m1 created\n"
	if diff := cmp.Diff(want, s.mustRun(t, "", "apply", "-f", file)); diff != "" {
		t.Errorf("first apply (-want +got):\n%s", diff)
	}
	want = strings.ReplaceAll(want, "created", "configured")
	if diff := cmp.Diff(want, s.mustRun(t, "", "apply", "-f", file)); diff != "" {
		t.Errorf("second apply (-want +got):\n%s", diff)
	}

	tests := map[string]struct {
		args   []string
		header []string
		row    []string // leading fields of one row
	}{
		"machines": {
			args:   []string{"get", "machines"},
			header: []string{"ID", "HOSTNAME", "STATE", "ARCH", "MACS", "BMC", "BMC_CERT", "VERSION"},
			row:    []string{"m1", "web1", "ready", "x86_64", "52:54:00:12:34:56", "10.0.0.5:623", "-"},
		},
		"one machine, consistent": {
			args:   []string{"get", "Machine", "m1", "--consistent"},
			header: []string{"ID", "HOSTNAME", "STATE", "ARCH", "MACS", "BMC", "BMC_CERT", "VERSION"},
			row:    []string{"m1", "web1", "ready"},
		},
		"subnets": {
			args:   []string{"get", "subnet"},
			header: []string{"NAME", "CIDR", "GATEWAY", "POOLS", "DISCOVERY", "VERSION"},
			row:    []string{"lab", "10.0.0.0/24", "10.0.0.1", "10.0.0.100-10.0.0.199", "yes"},
		},
		"images": {
			args:   []string{"get", "images"},
			header: []string{"NAME", "TYPE", "FORMAT", "SIZE", "SHA256"},
			row:    []string{"ubuntu", "os", "raw.gz", "1.5GiB", "0123456789ab"},
		},
		"artifacts": { // the image's, which no node holds
			args:   []string{"get", "artifacts"},
			header: []string{"SHA256", "SIZE", "STATE", "IMAGES", "NODES", "MISSING_ON"},
			row:    []string{"0123456789ab", "1.5GiB", "missing", "ubuntu", "-", "n1"},
		},
		"templates": {
			args:   []string{"get", "templates"},
			header: []string{"NAME", "ACTIONS"},
			row:    []string{"install", "2"},
		},
		"settings (defaults)": {
			args:   []string{"get", "settings"},
			header: []string{"SITE_NAME", "UNKNOWN_MACHINES", "VERSION"},
			row:    []string{"site", "discover"},
		},
		"global flags after the command": {
			args:   []string{"get", "workflows", "--server", s.url, "--token", s.token},
			header: []string{"ID", "MACHINE", "TEMPLATE", "STATUS", "NOW"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			rows := table(s.mustRun(t, "", tt.args...))
			if diff := cmp.Diff(tt.header, rows[0]); diff != "" {
				t.Errorf("header (-want +got):\n%s", diff)
			}
			if tt.row == nil {
				if len(rows) != 1 {
					t.Errorf("got rows %q, want none", rows[1:])
				}
				return
			}
			if !slices.ContainsFunc(rows[1:], func(r []string) bool { return slices.Equal(r[:min(len(r), len(tt.row))], tt.row) }) {
				t.Errorf("no row starts with %q in %q", tt.row, rows[1:])
			}
		})
	}

	t.Run("formats", func(t *testing.T) { checkFormats(t, s) })
	t.Run("delete", func(t *testing.T) { checkDelete(t, s) })
}

// checkFormats reads the objects of siteYAML as JSON and YAML.
func checkFormats(t *testing.T, s *testSite) {
	var m store.Machine
	if err := json.Unmarshal([]byte(s.mustRun(t, "", "-o", "json", "get", "machine", "m1")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Hostname != "web1" || m.BMC == nil || !m.BMC.PasswordSet {
		t.Errorf("get -o json: got %+v, want web1 with a BMC password set", m)
	}
	var subnets []store.Subnet
	if err := json.Unmarshal([]byte(s.mustRun(t, "", "get", "subnets", "-o", "json")), &subnets); err != nil || len(subnets) != 1 {
		t.Errorf("get subnets -o json: %v, %d subnets", err, len(subnets))
	}
	var images []store.Image
	if err := yaml.Unmarshal([]byte(s.mustRun(t, "", "get", "images", "-o", "yaml")), &images); err != nil || len(images) != 1 || images[0].Size != 1610612736 {
		t.Errorf("get images -o yaml: %v, %+v", err, images)
	}
}

// checkDelete deletes the machine of siteYAML.
func checkDelete(t *testing.T, s *testSite) {
	if got := s.mustRun(t, "", "delete", "machine", "m1"); got != "machine/m1 deleted\n" {
		t.Errorf("delete: got %q", got)
	}
	r := s.run(t, "", "get", "machine", "m1")
	if r.code != 1 || !strings.Contains(r.stderr, "HTTP 404") || !strings.HasPrefix(r.stderr, "outpost: ") {
		t.Errorf("get deleted machine: exit %d, stderr %q; want 1 and an HTTP 404", r.code, r.stderr)
	}
}

func TestApplySources(t *testing.T) {
	parallel(t)
	s := startSite(t)
	dir := t.TempDir()
	writeFile(t, dir, "b.json", `{"kind": "subnet", "name": "b", "cidr": "10.1.0.0/24"}`)
	writeFile(t, dir, "a.yml", "kind: Subnet\nname: a\ncidr: 10.2.0.0/24\n")
	writeFile(t, dir, "notes.txt", "kind: Gadget\n")
	if diff := cmp.Diff("subnet/a created\nsubnet/b created\n", s.mustRun(t, "", "apply", "-f", dir)); diff != "" {
		t.Errorf("apply dir (-want +got):\n%s", diff)
	}
	stdin := `[{"kind": "Subnet", "name": "c", "cidr": "10.3.0.0/24"}, {"kind": "Settings", "site_name": "lab"}]`
	if diff := cmp.Diff("settings configured\nsubnet/c created\n", s.mustRun(t, stdin, "apply", "-f", "-")); diff != "" {
		t.Errorf("apply stdin (-want +got):\n%s", diff)
	}
	if rows := table(s.mustRun(t, "", "get", "settings")); !slices.Equal(rows[1][:2], []string{"lab", "discover"}) {
		t.Errorf("settings: got %q", rows)
	}
}

func TestApplyInvalid(t *testing.T) {
	parallel(t)
	s := startSite(t)
	// Each file starts with a valid subnet that must not be applied.
	const canary = "kind: Subnet\nname: canary\ncidr: 10.9.0.0/24\n---\n"
	const machine = "kind: Machine\nid: m1\nbmc: {address: 10.0.0.5, password: " + bmcPassword + "}\n"
	tests := map[string]struct {
		doc  string
		want []string // in stderr
	}{
		"bad cidr": {
			doc:  machine + "---\nkind: Subnet\nname: lab\ncidr: 10.0.0.0/33\n",
			want: []string{"document 3 (line 11)", "subnet/lab", "cidr:"},
		},
		"unknown kind": {
			doc:  "kind: Gadget\nname: g\n",
			want: []string{"document 2", `unknown kind "Gadget"`},
		},
		"kind that cannot be applied": {
			doc:  "kind: Lease\nip: 10.0.0.9\n",
			want: []string{"document 2", `unknown kind "Lease"`},
		},
		"no kind": {
			doc:  "name: x\n",
			want: []string{"document 2", "kind is missing"},
		},
		"no key": {
			doc:  "kind: Machine\nhostname: web1\n",
			want: []string{"document 2", "id is missing"},
		},
		"unknown field": {
			doc:  "kind: Machine\nid: m2\nbmc: {address: 10.0.0.5, pasword: " + bmcPassword + "}\n",
			want: []string{"machine/m2", "pasword: unknown field"},
		},
		"wrong type": {
			doc:  "kind: Machine\nid: m2\nbmc: {address: 10.0.0.5, password: 12345}\n",
			want: []string{"machine/m2", "bmc.password: wrong type"},
		},
		"not yaml": {
			doc:  machine + "---\nkind: Subnet\n  name: [x\n",
			want: []string{"document 3", "not valid YAML"},
		},
		"defined twice": {
			doc:  machine + "---\n" + machine,
			want: []string{"document 3", "machine/m1 is also defined in", "document 2"},
		},
	}
	dir := t.TempDir()
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			file := writeFile(t, dir, strings.ReplaceAll(name, " ", "-")+".yaml", canary+tt.doc)
			r := s.run(t, "", "apply", "-f", file)
			if r.code != 1 || r.stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", r.code, r.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not contain %q", r.stderr, w)
				}
			}
			if !strings.Contains(r.stderr, "nothing was applied") {
				t.Errorf("stderr %q does not say nothing was applied", r.stderr)
			}
		})
	}
	if rows := table(s.mustRun(t, "", "get", "subnets")); len(rows) != 1 {
		t.Errorf("subnets after bad applies: %q, want none", rows[1:])
	}
	if r := s.run(t, "", "get", "machine", "m1"); r.code != 1 {
		t.Errorf("machine m1 exists after bad applies")
	}
}

func TestApplyRefused(t *testing.T) {
	parallel(t)
	s := startSite(t)
	// Valid on its own, refused by the appliance: the machine is missing.
	doc := "kind: Workflow\nid: w1\nmachine_id: nope\ntemplate: install\n---\nkind: Subnet\nname: lab\ncidr: 10.0.0.0/24\n"
	r := s.run(t, doc, "apply", "-f", "-")
	if r.code != 1 || r.stdout != "subnet/lab created\n" {
		t.Errorf("exit %d, stdout %q; want 1 and the subnet created", r.code, r.stdout)
	}
	if want := "outpost: workflow/w1: machine_id: no machine \"nope\" (HTTP 400)\n"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not contain %q", r.stderr, want)
	}
}

type post struct {
	kind, machine, message string
}

func (s *testSite) postEvents(t *testing.T, events ...post) {
	t.Helper()
	c := client.New(s.url, s.token)
	for _, e := range events {
		body := store.Event{Kind: e.kind, MachineID: e.machine, Message: e.message}
		if err := c.Do(t.Context(), http.MethodPost, "/v1/events", body, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// lastSeq is the newest event's sequence number.
func (s *testSite) lastSeq(t *testing.T) uint64 {
	t.Helper()
	_, last, err := client.New(s.url, s.token).Events(t.Context(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return last
}

func TestEvents(t *testing.T) {
	parallel(t)
	s := startSite(t)
	base := s.lastSeq(t)
	s.postEvents(t, post{"note", "m1", "one"}, post{"note", "m1", "two"}, post{"note", "", "three\x1b[2J"})

	messages := func(out string) []string {
		var got []string
		for _, r := range table(out)[1:] {
			if r[4] != "admin" {
				t.Errorf("event %s is by %q, want the token's name, admin", r[0], r[4])
			}
			got = append(got, strings.Join(r[5:], " "))
		}
		return got
	}
	tests := map[string]struct {
		args []string
		want []string
	}{
		"newest":     {args: []string{"events", "--limit", "2"}, want: []string{"two", "three [2J"}},
		"since":      {args: []string{"events", "--since", itoa(base + 1)}, want: []string{"two", "three [2J"}},
		"since page": {args: []string{"events", "--since", itoa(base), "--limit", "1"}, want: []string{"one"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, messages(s.mustRun(t, "", tt.args...))); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
	out := s.mustRun(t, "", "events")
	if diff := cmp.Diff([]string{"SEQ", "TIME", "MACHINE", "KIND", "BY", "MESSAGE"}, table(out)[0]); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	var events []store.Event
	if err := json.Unmarshal([]byte(s.mustRun(t, "", "events", "-o", "json")), &events); err != nil || len(events) < 3 {
		t.Fatalf("events -o json: %v, %d events", err, len(events))
	}
	if last := events[len(events)-1]; last.Message != "three\x1b[2J" || last.Seq != base+3 {
		t.Errorf("last event: got %+v", last)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWatch(t *testing.T) {
	parallel(t)
	s := startSite(t)
	for _, format := range []string{"table", "json"} {
		t.Run(format, func(t *testing.T) {
			since := itoa(s.lastSeq(t))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr syncBuffer
			done := make(chan int)
			go func() {
				args := []string{"--server", s.url, "--token", s.token, "-o", format, "watch", "--since", since}
				done <- cli.Run(ctx, args, strings.NewReader(""), &stdout, &stderr)
			}()
			s.postEvents(t, post{"power", "m7", "powered on " + format})
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(stdout.String(), "powered on "+format) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("watch: exit %d, stderr %q", code, stderr.String())
			}
			out := stdout.String()
			t.Logf("watch -o %s:\n%s", format, out)
			if format == "json" {
				var e store.Event
				if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &e); err != nil || e.MachineID != "m7" {
					t.Errorf("first line: %v, %+v", err, e)
				}
				return
			}
			if f := strings.Fields(out); len(f) < 5 || f[2] != "m7" || f[3] != "power" || f[4] != "admin" {
				t.Errorf("watch line %q: want SEQ TIME m7 power admin MESSAGE", out)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	parallel(t)
	s := startSite(t)
	out := s.mustRun(t, "", "cluster", "status")
	lines := strings.SplitN(out, "\n", 3)
	if !strings.HasPrefix(lines[0], "n1: Leader, leader n1, term ") || !strings.HasSuffix(lines[0], ", healthy") {
		t.Errorf("status line %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "site CA generation 1 (") {
		t.Errorf("CA line %q", lines[1])
	}
	rows := table(lines[2])
	want := [][]string{{"ID", "RAFT_ADDR", "API", "SUFFRAGE", "LEADER", "CA_GENERATION"}, {"n1", s.raftAddr, s.url, "Voter", "yes", "1"}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	var st site.Status
	if err := json.Unmarshal([]byte(s.mustRun(t, "", "cluster", "status", "-o", "json")), &st); err != nil || st.State != "Leader" {
		t.Errorf("status -o json: %v, %+v", err, st)
	}

	// A second node joins; the site key it needs is written for it.
	n2Raft := freeAddr(t)
	openNode(t, s.log, s.key, "n2", t.TempDir(), n2Raft, "http://127.0.0.1:1", false)
	keyFile := filepath.Join(t.TempDir(), "site.key")
	out = s.mustRun(t, "", "cluster", "join", "n2", n2Raft, "http://127.0.0.1:1", "--site-key-out", keyFile)
	if want := "node n2 joined the cluster\nsite key for n2 written to " + keyFile + "\n"; out != want {
		t.Errorf("join: got %q, want %q", out, want)
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil || !bytes.Equal(raw, s.key.Raw()) {
		t.Errorf("site key file: %v; matches the site key: %v", err, bytes.Equal(raw, s.key.Raw()))
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("site key file mode: %v %v", st.Mode(), err)
	}
	if r := s.run(t, "", "cluster", "join", "n3", "127.0.0.1:2", "http://127.0.0.1:2", "--site-key-out", keyFile); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("join over an existing key file: exit %d, %q", r.code, r.stderr)
	}
	if rows := table(s.mustRun(t, "", "cluster", "status")); len(rows) != 5 {
		t.Errorf("status after join: %q, want 2 members", rows)
	}
	if out := s.mustRun(t, "", "cluster", "remove", "n2"); out != "node n2 removed from the cluster\n" {
		t.Errorf("remove: got %q", out)
	}
	if rows := table(s.mustRun(t, "", "cluster", "status")); len(rows) != 4 {
		t.Errorf("status after remove: %q, want 1 member", rows)
	}
}

func TestToken(t *testing.T) {
	parallel(t)
	s := startSite(t)
	r := s.run(t, "", "token", "create", "ci", "--role", "viewer", "--expires", "30d")
	token := strings.TrimSpace(r.stdout)
	if r.code != 0 || strings.Count(token, ".") != 1 || !strings.Contains(r.stderr, "cannot be shown again") ||
		!strings.Contains(r.stderr, "viewer role, until ") {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "", "--server", s.url, "--token", token, "get", "machines"); r.code != 0 {
		t.Errorf("the new token does not read: %q", r.stderr)
	}
	// A viewer reads, and nothing else.
	if r := runCLI(t, "", "--server", s.url, "--token", token, "delete", "machine", "m1"); r.code != 1 || !strings.Contains(r.stderr, "needs the operator role") {
		t.Errorf("a viewer deleting: exit %d, %q", r.code, r.stderr)
	}
	if r := runCLI(t, "", "--server", s.url, "--token", token, "token", "list"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("a viewer listing tokens: exit %d, %q", r.code, r.stderr)
	}
	s.mustRun(t, "", "token", "create", "ops", "--role", "operator", "--expires", "2099-01-31")
	file := writeFile(t, t.TempDir(), "token", s.token+"\n")
	r = runCLI(t, "", "--server", s.url, "--token-file", file, "token", "list")
	if r.code != 0 {
		t.Fatalf("--token-file does not work: %q", r.stderr)
	}
	rows := table(r.stdout)
	if diff := cmp.Diff([]string{"ID", "NAME", "ROLE", "EXPIRES", "CREATED"}, rows[0]); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	got := map[string][2]string{} // name: role, expiry
	for _, row := range rows[1:] {
		got[row[1]] = [2]string{row[2], row[3]}
		if strings.Contains(r.stdout, token) || strings.Contains(r.stdout, strings.Split(token, ".")[1]) {
			t.Errorf("token list shows a secret: %q", r.stdout)
		}
	}
	if got["admin"] != [2]string{"admin", "-"} || got["ci"][0] != "viewer" || got["ci"][1] == "-" ||
		got["ops"] != [2]string{"operator", "2099-01-31T00:00:00Z"} || len(got) != 3 {
		t.Errorf("tokens (name: role, expiry) = %v", got)
	}
	if r := runCLI(t, "", "--server", s.url, "--token", "nope.nope", "get", "machines"); r.code != 1 || !strings.Contains(r.stderr, "HTTP 401") {
		t.Errorf("bad token: exit %d, %q", r.code, r.stderr)
	}
}

// TestTokenCreateUsage: a token create without a role, or with an expiry
// that is neither a lifetime nor a time, is a usage error that reaches no
// server.
func TestTokenCreateUsage(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		args []string
		want string
	}{
		"no role":     {[]string{"token", "create", "ci"}, "--role is required"},
		"bad expiry":  {[]string{"token", "create", "ci", "--role", "viewer", "--expires", "soon"}, "--expires"},
		"zero expiry": {[]string{"token", "create", "ci", "--role", "viewer", "--expires", "0d"}, "not positive"},
		"no name":     {[]string{"token", "create", "--role", "viewer"}, "missing arguments"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, "", append([]string{"--server", "http://127.0.0.1:1", "--token", "x"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	parallel(t)
	tests := map[string]struct {
		args []string
		code int
		want string // in stderr, or in stdout when code is 0
	}{
		"help":            {args: []string{"help"}, code: 0, want: "cluster join ID RAFT_ADDR API_URL"},
		"-h":              {args: []string{"-h"}, code: 0, want: "token create NAME"},
		"no command":      {args: nil, code: 2, want: "no command given"},
		"unknown command": {args: []string{"frob"}, code: 2, want: `unknown command "frob"`},
		"unknown sub":     {args: []string{"cluster", "frob"}, code: 2, want: `unknown command "cluster frob"`},
		"unknown flag":    {args: []string{"get", "machines", "--frob"}, code: 2, want: "flag provided but not defined: -frob"},
		"bad output":      {args: []string{"-o", "xml", "get", "machines"}, code: 2, want: `-o "xml"`},
		"unknown kind":    {args: []string{"get", "gadgets"}, code: 2, want: `unknown kind "gadgets"`},
		"too many args":   {args: []string{"delete", "machine", "a", "b"}, code: 2, want: `unexpected argument "b"`},
		"apply without f": {args: []string{"apply"}, code: 2, want: "-f FILE is required"},
		"no server": {
			args: []string{"--server", "http://127.0.0.1:1", "--token", "x", "get", "machines"},
			code: 1, want: "outpost: client: GET /v1/machines",
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, "", tt.args...)
			out := r.stderr
			if tt.code == 0 {
				out = r.stdout
			}
			if r.code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, output %q; want %d and %q", r.code, out, tt.code, tt.want)
			}
			if tt.code == 2 && !strings.Contains(r.stderr, "usage: outpost") {
				t.Errorf("stderr %q has no usage", r.stderr)
			}
		})
	}
}
