package deptest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/outposthq/outpost/"

// rule forbids some of a package's (non-test) dependencies: forbid
// returns why a dependency is not allowed, or "". Outpost's and third
// parties' packages are checked whether imported directly or not; the
// standard library only where imported directly (fmt itself imports os).
type rule struct {
	pkg    string
	forbid func(path string, std bool) string
}

func stdOnly(path string, std bool) string {
	switch {
	case strings.HasPrefix(path, module):
		return "it may not import other Outpost packages"
	case !std:
		return "it may use only the standard library"
	}
	return ""
}

// noIO is the standard library without networking, files or programs
// (address and URL values, net/netip and net/url, are data, not
// networking).
func noIO(path string, std bool) string {
	network := path == "net" || strings.HasPrefix(path, "net/") && path != "net/netip" && path != "net/url"
	if network || path == "os" || path == "os/exec" || path == "io/fs" || path == "syscall" {
		return "it is pure logic: no network, no files, no programs"
	}
	return ""
}

// pureLogic is noIO within the standard library.
func pureLogic(path string, std bool) string {
	if why := noIO(path, std); why != "" {
		return why
	}
	return stdOnly(path, std)
}

// Outpost's packages by role.
var (
	// The edges: each serves one protocol or drives one peer. They call
	// the site's proposer through interfaces of their own and never
	// reach the Raft node.
	edges = []string{"api", "dhcp", "tftp", "httpboot", "metadata", "provision", "syncclient", "jobs", "bmc", "cli", "client", "console",
		"artifacts"}
	// The protocols the site speaks, which its state machine must not
	// depend on: the log's format is its own.
	protocols = []string{"syncproto", "appliance/internal/agentproto", "appliance/internal/api", "appliance/internal/dhcp",
		"appliance/internal/tftp", "appliance/internal/httpboot", "appliance/internal/metadata", "appliance/internal/provision",
		"appliance/internal/syncclient", "appliance/internal/client"}
)

// sharedCore lists the root internal/ packages.
var sharedCore = func() []string {
	out, err := exec.Command("go", "list", module+"internal/...").Output()
	if err != nil {
		panic("go list " + module + "internal/...: " + err.Error())
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		pkgs = append(pkgs, strings.TrimPrefix(p, module))
	}
	return pkgs
}()

func isOutpost(path string, pkgs ...string) bool {
	return slices.ContainsFunc(pkgs, func(p string) bool { return path == module+p })
}

var rules = []rule{
	// The wire protocol is shared by central and the appliances and
	// depends on neither.
	{"syncproto", stdOnly},
	{"appliance/internal/ipam", pureLogic},
	{"appliance/internal/workflow", pureLogic},
	{"appliance/internal/actions", pureLogic},
	// The installer's contract is shared by the appliance and the agent.
	{"appliance/internal/agentproto", pureLogic},
	// The store is storage: no networking, no Raft, no rules; of
	// Outpost's packages it uses only the pure logic it stores the
	// results of, the shared errors, the roles tokens carry and the shared
	// check of bbolt files.
	{"appliance/internal/store", func(path string, std bool) string {
		switch {
		case path == "net/http" || strings.HasPrefix(path, "github.com/hashicorp/"):
			return "the store does not network or replicate"
		case isOutpost(path, "appliance/internal/workflow", "appliance/internal/actions", "internal/errs", "internal/access", "internal/boltfile"):
			return ""
		case strings.HasPrefix(path, module):
			return "the store imports no Outpost package but workflow, actions, internal/errs, internal/access and internal/boltfile"
		}
		return ""
	}},
	// The machine search is pure logic over the store's objects: it
	// reads the store and no other Outpost package but the workflows'
	// states, the shared errors and the shared grammar
	// (internal/machinequery).
	{"appliance/internal/machinequery", func(path string, std bool) string {
		switch {
		case isOutpost(path, "appliance/internal/store", "appliance/internal/workflow", "appliance/internal/actions",
			"internal/errs", "internal/access", "internal/boltfile", "internal/machinequery"):
			return ""
		case strings.HasPrefix(path, module):
			return "the machine search imports no Outpost package but the store (and what it imports)"
		case path == "net/http" || strings.HasPrefix(path, "github.com/hashicorp/"):
			return "the machine search does not network or replicate"
		}
		return noIO(path, std)
	}},
	// The browser harness drives a browser for tests of any page: it
	// imports no Outpost package.
	{"internal/browsertest", func(path string, std bool) string {
		if strings.HasPrefix(path, module) {
			return "the browser harness imports no Outpost package"
		}
		return ""
	}},
	// Central's fleet model is the wire types of its fleet API and their
	// pure derivation, shared with central's client: it imports the
	// sync protocol and nothing else of Outpost's, and does no I/O.
	{"central/fleet", func(path string, std bool) string {
		if strings.HasPrefix(path, module) && !isOutpost(path, "syncproto") {
			return "the fleet model imports no Outpost package but syncproto"
		}
		return noIO(path, std)
	}},
	// Neither binary links a browser driver: browsers are for tests.
	{"appliance/cmd/applianced", noBrowser},
	{"central/cmd/centrald", noBrowser},
	// Central's client is the one central package the CLI imports: it
	// reads central's answers as wire types and knows none of central's
	// internals (nor Raft, which the CLI, an edge, must not reach).
	{"central/client", func(path string, std bool) string {
		if strings.HasPrefix(path, module+"central/internal/") || strings.HasPrefix(path, module+"appliance/") {
			return "central's client imports only syncproto and the shared core"
		}
		return ""
	}},
	// The site's state machine and proposer: no protocol, no network, no
	// Raft node (it is an Applier; the cluster runs it).
	{"appliance/internal/site", func(path string, std bool) string {
		switch {
		case isOutpost(path, protocols...):
			return "the state machine imports no protocol package: its commands are its own"
		case path == "net/http" || strings.HasPrefix(path, "github.com/hashicorp/") || isOutpost(path, "internal/raftnode"):
			return "the state machine does not network or run Raft"
		case strings.HasPrefix(path, module+"appliance/internal/cluster"):
			return "the state machine does not know the node that runs it"
		}
		return noIO(path, std)
	}},
	// The web console is an edge beside the API: it reads the store,
	// changes through the proposer, and is handed the API's handler and
	// the sync client's state as values; it drives no other protocol.
	{"appliance/internal/console", func(path string, std bool) string {
		if isOutpost(path, "appliance/internal/dhcp", "appliance/internal/tftp", "appliance/internal/httpboot",
			"appliance/internal/metadata", "appliance/internal/provision", "appliance/internal/syncclient",
			"appliance/internal/client", "appliance/internal/cli") {
			return "the console serves pages: it drives no protocol or peer itself"
		}
		return ""
	}},
}

func init() {
	// The shared core (every package under the root internal/) imports
	// neither side.
	for _, core := range sharedCore {
		rules = append(rules, rule{core, func(path string, std bool) string {
			if strings.HasPrefix(path, module+"appliance/") || strings.HasPrefix(path, module+"central/") {
				return "the shared core imports neither side"
			}
			return ""
		}})
	}
	// No edge reaches the Raft node, directly or through the cluster.
	for _, e := range edges {
		rules = append(rules, rule{"appliance/internal/" + e, func(path string, std bool) string {
			if isOutpost(path, "internal/raftnode", "appliance/internal/cluster") || strings.HasPrefix(path, "github.com/hashicorp/raft") {
				return "an edge calls the site's proposer through its own interfaces, never the Raft node"
			}
			return ""
		}})
	}
}

// noBrowser forbids a browser driver.
func noBrowser(path string, std bool) string {
	if strings.HasPrefix(path, "github.com/chromedp/") || isOutpost(path, "internal/browsertest") {
		return "browser drivers are for tests"
	}
	return ""
}

func TestDeps(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			self := module + r.pkg
			direct := goList(t, "{{join .Imports \"\\n\"}}", self)
			for _, line := range goList(t, "{{.ImportPath}} {{.Standard}}", "-deps", self) {
				path, std, _ := strings.Cut(line, " ")
				if path == self || std == "true" && !slices.Contains(direct, path) {
					continue
				}
				if why := r.forbid(path, std == "true"); why != "" {
					t.Errorf("%s depends on %s: %s", r.pkg, path, why)
				}
			}
		})
	}
}

// goList runs go list with a format and returns its lines.
func goList(t *testing.T, format string, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-f", format}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var lines []string
	for l := range strings.Lines(string(out)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// clockCalls are the calls that read the clock or wait on it.
var clockCalls = []string{"Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick"}

// TestNoClock keeps the clock out of pure logic and out of apply: every
// node of a site must compute the same state from the same log, so the
// time comes in the command (the proposer stamps it) or as an argument.
// The proposer itself (proposer*.go) is the one place of the site
// package that reads the clock.
func TestNoClock(t *testing.T) {
	for _, dir := range []string{"../ipam", "../workflow", "../site", "../machinequery", "../../../internal/machinequery"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			base := filepath.Base(f)
			if strings.HasSuffix(base, "_test.go") || strings.HasPrefix(base, "proposer") {
				continue
			}
			for _, call := range clockAndRandomCalls(t, f) {
				t.Errorf("%s reads the clock or randomness: %s", f, call)
			}
		}
	}
}

// clockAndRandomCalls lists the calls of package time that read the
// clock and any use of crypto/rand or math/rand in file.
func clockAndRandomCalls(t *testing.T, file string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, imp := range f.Imports {
		if p := strings.Trim(imp.Path.Value, `"`); p == "crypto/rand" || strings.HasPrefix(p, "math/rand") {
			out = append(out, "imports "+p)
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == "time" && slices.Contains(clockCalls, sel.Sel.Name) {
			out = append(out, "time."+sel.Sel.Name)
		}
		return true
	})
	return out
}
