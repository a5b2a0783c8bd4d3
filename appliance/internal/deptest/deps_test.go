package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/outposthq/outpost/"

// rule forbids a package's (non-test) dependencies: forbid returns why a
// dependency is not allowed, or "".
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

// pureLogic is stdOnly without networking or running programs (address
// and URL values, net/netip and net/url, are data, not networking).
func pureLogic(path string, std bool) string {
	network := path == "net" || strings.HasPrefix(path, "net/") && path != "net/netip" && path != "net/url"
	if network || path == "os/exec" {
		return "it is pure logic: no network, no programs"
	}
	return stdOnly(path, std)
}

var rules = []rule{
	// The wire protocol is shared by central and the appliances and
	// depends on neither.
	{"syncproto", stdOnly},
	{"appliance/internal/ipam", pureLogic},
	{"appliance/internal/workflow", pureLogic},
	// The installer's contract is shared by the appliance and the agent.
	{"appliance/internal/agentproto", pureLogic},
	// The store is storage: no networking, no Raft; of Outpost's packages
	// it uses only the pure logic it stores the results of.
	{"appliance/internal/store", func(path string, std bool) string {
		switch {
		case path == "net/http" || strings.HasPrefix(path, "github.com/hashicorp/"):
			return "the store does not network or replicate"
		case path == module+"appliance/internal/workflow" || path == module+"appliance/internal/agentproto":
			return ""
		case strings.HasPrefix(path, module):
			return "the store imports no Outpost package but workflow and agentproto"
		}
		return ""
	}},
}

func TestDeps(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			self := module + r.pkg
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", self).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", self, err)
			}
			for line := range strings.Lines(string(out)) {
				path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
				if path == self {
					continue
				}
				if why := r.forbid(path, std == "true"); why != "" {
					t.Errorf("%s depends on %s: %s", r.pkg, path, why)
				}
			}
		})
	}
}
