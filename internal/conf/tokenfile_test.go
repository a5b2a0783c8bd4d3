package conf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSaveAdminToken writes a new token file 0600, and never overwrites
// one that exists: the error names it and says what to do.
func TestSaveAdminToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.token")
	if err := SaveAdminToken(path, "first"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, %v; want mode 0600", fi, err)
	}
	err = SaveAdminToken(path, "second")
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move it aside") {
		t.Errorf("SaveAdminToken over an existing file = %v, want an error naming it", err)
	}
	if err := AdminTokenFree(path); err == nil || err.Error() != SaveAdminToken(path, "third").Error() {
		t.Errorf("AdminTokenFree of an existing file = %v, want SaveAdminToken's error", err)
	}
	if err := AdminTokenFree(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("AdminTokenFree of no file = %v", err)
	}
	if raw, _ := os.ReadFile(path); string(raw) != "first\n" {
		t.Errorf("the token file holds %q after a second save, want the first token", raw)
	}
}
