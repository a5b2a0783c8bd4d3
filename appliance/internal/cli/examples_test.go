package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/cli"
	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/central/testcentral"
)

// repoRoot is the directory of go.mod, above the package's directory
// (where go test runs).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Every file in examples/ is accepted, whole, by a fresh appliance, as
// `outpost apply -f examples/FILE` sends it: an example that is refused,
// or only partly applied, fails here rather than on a new user's first
// try.
func TestExamples(t *testing.T) {
	root := repoRoot(t)
	entries, err := os.ReadDir(filepath.Join(root, "examples"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, ent := range entries {
		if !ent.IsDir() {
			files = append(files, ent.Name())
		}
	}
	if len(files) == 0 {
		t.Fatal("examples/ holds no files")
	}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			parallel(t)
			n := apptest.Start(t)
			file := filepath.Join(root, "examples", name)
			r := runCLI(t, "", "--server", n.URL, "--token", n.Token, "apply", "-f", file)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("outpost apply -f examples/%s: exit %d\n%s", name, r.code, r.stderr)
			}
			// A second apply replaces every object the first created.
			again := runCLI(t, "", "--server", n.URL, "--token", n.Token, "apply", "-f", file)
			if want := strings.ReplaceAll(r.stdout, " created\n", " configured\n"); again.code != 0 || again.stdout != want {
				t.Errorf("second apply: exit %d, stdout %q; want %q", again.code, again.stdout, want)
			}
		})
	}
}

// readmeCommands returns the outpost commands of README.md's sh blocks,
// in order, without their comments.
func readmeCommands(t *testing.T, root string) [][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	inSh := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "```"):
			inSh = !inSh && line == "```sh"
		case inSh && strings.HasPrefix(line, "bin/outpost "):
			line, _, _ = strings.Cut(line, "#")
			cmds = append(cmds, strings.Fields(line)[1:])
		}
	}
	return cmds
}

// The outpost commands README.md shows work as shown, in its order,
// against a fresh appliance and a fresh central. Where a command names the
// server and token (-server, -token <token>) they are the test node's;
// --central URL (and a context's --central URL) is the test central's, a
// context's --site URL the test node's; where it relies on the defaults,
// it runs as after `make appliance`: in a directory holding examples/,
// a stand-in of each file of images/out/ it names, var/node1/admin.token (which the CLI finds by itself) and
// var/central/admin.token, with OUTPOST_SERVER naming the test node
// instead of 127.0.0.1:7080 until a command makes a context current (the
// environment would beat it), and the config file in the test's
// directory. watch runs until it prints an event, then is interrupted as
// a person would.
func TestREADMECommands(t *testing.T) {
	root := repoRoot(t)
	cmds := readmeCommands(t, root)
	var shown []string
	for _, c := range cmds {
		shown = append(shown, strings.Join(c, " "))
	}
	for _, want := range []string{"apply -f examples/site.yaml", "get machines"} {
		if !slices.Contains(shown, want) {
			t.Fatalf("README.md does not show `bin/outpost %s`; it shows %q", want, shown)
		}
	}
	n := apptest.Start(t)
	cen := testcentral.Start(t)
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "examples"), os.DirFS(filepath.Join(root, "examples"))); err != nil {
		t.Fatal(err)
	}
	writeTokens(t, dir, n.Token, cen.Token)
	writeImages(t, dir, cmds)
	t.Chdir(dir)
	t.Setenv("OUTPOST_CONFIG", filepath.Join(dir, "config.yaml"))
	t.Setenv("OUTPOST_SERVER", n.URL)
	t.Setenv("OUTPOST_TOKEN", "")
	t.Setenv("OUTPOST_TOKEN_FILE", "")

	applied := false
	for i, cmd := range cmds {
		args := slices.Clone(cmd)
		for j, a := range args {
			switch {
			case a == "<token>":
				args[j] = n.Token
			case j > 0 && (args[j-1] == "-server" || args[j-1] == "--server"):
				args[j] = n.URL
			case j > 0 && (args[j-1] == "-central" || args[j-1] == "--central"):
				args[j] = cen.URL
			case j > 0 && args[j-1] == "--site" && strings.HasPrefix(a, "http"):
				args[j] = n.URL
			}
		}
		t.Run(strconv.Itoa(i+1)+" "+shown[i], func(t *testing.T) {
			if slices.Contains(args, "watch") {
				checkWatch(t, n, args)
				return
			}
			r := runCLI(t, "", args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if len(args) > 1 && args[0] == "context" && args[1] == "use" {
				os.Unsetenv("OUTPOST_SERVER")
			}
			switch shown[i] {
			case "apply -f examples/site.yaml":
				applied = true
			case "get machines":
				if !applied {
					break
				}
				var ids []string
				for _, row := range table(r.stdout)[1:] {
					ids = append(ids, row[0])
				}
				if want := []string{"r1-s01", "r1-s02"}; !slices.Equal(ids, want) {
					t.Errorf("machines %q, want examples/site.yaml's %q", ids, want)
				}
			}
		})
	}
}

// writeImages writes a stand-in for each file of `make images` (under
// images/out/) that cmds name, such as an artifact pushed: the commands
// are what is tested, not the images.
func writeImages(t *testing.T, dir string, cmds [][]string) {
	t.Helper()
	for _, cmd := range cmds {
		for _, a := range cmd {
			if !strings.HasPrefix(a, "images/out/") {
				continue
			}
			if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(a)), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, dir, a, "a stand-in for make images' "+a+"\n")
		}
	}
}

// writeTokens writes the site's and central's admin tokens where their
// daemons save them when run on their defaults: var/node1/admin.token
// and var/central/admin.token under dir.
func writeTokens(t *testing.T, dir, site, central string) {
	t.Helper()
	for file, token := range map[string]string{cli.DefaultTokenFile: site, "var/central/admin.token": central} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(file)), 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, file, token+"\n")
	}
}

// Every file in examples/central/ is accepted, whole, by a fresh central;
// applied again, it changes nothing (no new revision) and says so of
// every object.
func TestCentralExamples(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "examples", "central", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("examples/central/ holds no YAML files (%v)", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			parallel(t)
			cen := testcentral.Start(t)
			r := centralRun(t, cen, "", "apply", "-f", file)
			if r.code != 0 || strings.Contains(r.stderr, "outpost:") {
				t.Fatalf("outpost apply -f %s: exit %d\n%s", file, r.code, r.stderr)
			}
			revision := func() string {
				return mustOK(t, centralRun(t, cen, "", "get", "sites", "-o", "json"))
			}
			before := revision()
			again := mustOK(t, centralRun(t, cen, "", "apply", "-f", file))
			if after := revision(); after != before {
				t.Errorf("second apply made a revision: sites before %s, after %s", before, after)
			}
			for _, line := range strings.Split(strings.TrimSpace(again), "\n") {
				if !strings.Contains(line, " unchanged") {
					t.Errorf("second apply: %q; want every object unchanged", line)
				}
			}
		})
	}
}

// examples/cli/config.yaml works as the config file: its current context
// (the site's) and its central context reach a site and central run on
// their defaults, here the test's, with their tokens where the daemons
// save them.
func TestExampleConfig(t *testing.T) {
	root := repoRoot(t)
	n := apptest.Start(t)
	cen := testcentral.Start(t)
	raw, err := os.ReadFile(filepath.Join(root, "examples", "cli", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("http://127.0.0.1:7080", n.URL, "http://127.0.0.1:7443", cen.URL).Replace(string(raw))
	if text == string(raw) {
		t.Fatal("examples/cli/config.yaml names neither default URL")
	}
	dir := t.TempDir()
	writeTokens(t, dir, n.Token, cen.Token)
	cfgDir := filepath.Join(dir, "examples", "cli")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfgDir, "config.yaml", text)
	t.Setenv("OUTPOST_CONFIG", filepath.Join(cfgDir, "config.yaml"))
	list := table(mustOK(t, runCLI(t, "", "context", "list")))
	if len(list) != 3 || list[1][0] != "*" || list[1][1] != "lab" || list[2][2] != "central" {
		t.Errorf("context list: %q", list)
	}
	mustOK(t, runCLI(t, siteYAML, "apply", "-f", "-"))
	if got := table(mustOK(t, runCLI(t, "", "get", "machines"))); len(got) != 2 {
		t.Errorf("get machines through the current context: %q", got)
	}
	mustOK(t, runCLI(t, "kind: site\nid: fra-1\n", "--context", "hq", "apply", "-f", "-"))
	if got := table(mustOK(t, runCLI(t, "", "--context", "hq", "get", "sites"))); len(got) != 2 {
		t.Errorf("get sites through context hq: %q", got)
	}
}

// checkWatch runs `outpost watch` (args) until it prints an operator's
// note, then interrupts it. watch starts from the newest event at the time
// it starts, which the test cannot see, so the note is recorded again
// until watch prints one.
func checkWatch(t *testing.T, n *apptest.Node, args []string) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- cli.Run(ctx, args, strings.NewReader(""), &stdout, &stderr) }()
	c := client.New(n.URL, n.Token)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(time.Minute)
	for i := 0; !strings.Contains(stdout.String(), "readme-watch"); i++ {
		note := store.Event{Kind: "note", Message: "readme-watch " + strconv.Itoa(i)}
		if err := c.Do(t.Context(), "POST", "/v1/events", note, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-done:
			t.Fatalf("watch ended by itself: exit %d: %s", code, stderr.String())
		case <-deadline:
			t.Fatalf("watch printed no note in a minute; stdout %q, stderr %q", stdout.String(), stderr.String())
		case <-tick.C:
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("watch, interrupted: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), " note admin readme-watch ") {
		t.Errorf("watch printed %q, want a line with the note, by the token's name", stdout.String())
	}
}
