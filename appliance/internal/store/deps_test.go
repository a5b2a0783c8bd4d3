package store

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the store a storage layer: no networking, no Raft, no
// other appliance package.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == "net/http", strings.HasPrefix(p, "github.com/hashicorp/"),
			strings.HasPrefix(p, "github.com/outposthq/outpost/") && p != "github.com/outposthq/outpost/appliance/internal/store":
			t.Errorf("store depends on %s", p)
		}
	}
}
