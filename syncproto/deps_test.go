package syncproto

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the wire protocol free of either side's code: it may
// import only the standard library.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/outposthq/outpost/syncproto" {
			t.Errorf("syncproto depends on %s; it may use only the standard library", p)
		}
	}
}
