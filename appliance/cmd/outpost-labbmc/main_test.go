package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// TestRun: the command serves a Redfish BMC that redfishtool logs in to
// with the password it wrote to the password file, which it never
// prints; a wrong password is refused.
func TestRun(t *testing.T) {
	lab.Require(t, "redfishtool")
	passFile := filepath.Join(t.TempDir(), "bmc.pass")
	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	ready := make(chan *lab.RedfishBMC, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-password-file", passFile}, &out, func(b *lab.RedfishBMC) { ready <- b })
	}()
	var b *lab.RedfishBMC
	select {
	case b = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	pass, err := os.ReadFile(passFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(passFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("password file mode %v, want 0600", fi.Mode().Perm())
	}
	redfishtool := func(password string, args ...string) (string, error) {
		all := append([]string{"-r", b.Addr, "-u", "admin", "-p", password, "-S", "Always", "-A", "Session"}, args...)
		o, err := exec.CommandContext(t.Context(), "redfishtool", all...).CombinedOutput()
		return string(o), err
	}
	if o, err := redfishtool(strings.TrimSpace(string(pass)), "Systems", "get"); err != nil || !strings.Contains(o, `"PowerState": "Off"`) {
		t.Fatalf("redfishtool with the file's password: %v\n%s", err, o)
	}
	if _, err := redfishtool("wrong", "Systems", "reset", "On"); err == nil || b.Power() != "Off" {
		t.Errorf("a wrong password: %v, power %s", err, b.Power())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run after interrupt: %v", err)
	}
	if !strings.Contains(out.String(), "certificate sha256:") || strings.Contains(out.String(), strings.TrimSpace(string(pass))) {
		t.Errorf("output: want the fingerprint and not the password:\n%s", out.String())
	}
}
