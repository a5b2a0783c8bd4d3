package workflow

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps workflow pure logic: the standard library only, with no
// store, network or other appliance package. Test files are not counted.
func TestDeps(t *testing.T) {
	const self = "github.com/outposthq/outpost/appliance/internal/workflow"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case path == self:
		case strings.HasPrefix(path, "github.com/outposthq/"):
			t.Errorf("workflow depends on %s: it must not import other appliance packages", path)
		case std != "true":
			t.Errorf("workflow depends on %s: it must use the standard library only", path)
		case path == "net" || strings.HasPrefix(path, "net/") || path == "os/exec":
			t.Errorf("workflow depends on %s: it must not touch the network or run programs", path)
		}
	}
}
