package ipam

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps ipam pure logic: the standard library only, and nothing
// that talks to a network. Test files are not counted.
func TestDeps(t *testing.T) {
	const self = "github.com/outposthq/outpost/appliance/internal/ipam"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		path, std, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch {
		case path == self:
		case path == "net" || path == "net/http" || strings.HasPrefix(path, "net/http/"):
			t.Errorf("ipam depends on %s: it must not touch the network", path)
		case strings.HasPrefix(path, "github.com/outposthq/outpost/"):
			t.Errorf("ipam depends on %s: it must not import other appliance packages", path)
		case std != "true":
			t.Errorf("ipam depends on %s: it must use the standard library only", path)
		}
	}
}
