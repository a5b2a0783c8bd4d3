package lab

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRedfishBMCRedfishtool: DMTF's own Redfish client, redfishtool, reads
// the lab's Redfish BMC, logs in with a session or Basic authentication,
// resets the system and sets its boot override, and logs out: the BMC
// speaks Redfish as a client the project did not write expects. A wrong
// password is refused and changes nothing.
func TestRedfishBMCRedfishtool(t *testing.T) {
	Require(t, "redfishtool")
	b := StartRedfishBMC(t, RedfishBMCConfig{})
	run := func(password string, args ...string) (string, error) {
		t.Helper()
		// -S Always: HTTPS for every request (redfishtool does not verify
		// the certificate).
		all := append([]string{"-r", b.Addr, "-u", b.Username, "-p", password, "-S", "Always"}, args...)
		out, err := exec.CommandContext(t.Context(), "redfishtool", all...).CombinedOutput()
		t.Logf("redfishtool %s: %v\n%s", strings.Join(args, " "), err, out)
		return string(out), err
	}
	if out, err := run(b.Password, "root"); err != nil || !strings.Contains(out, `"RedfishVersion": "1.6.0"`) {
		t.Fatalf("root: %v", err)
	}
	if out, err := run(b.Password, "-A", "Session", "Systems", "get"); err != nil || !strings.Contains(out, `"PowerState": "Off"`) {
		t.Fatalf("Systems get: %v", err)
	}
	if _, err := run("wrong-password", "-A", "Session", "Systems", "reset", "On"); err == nil || b.Power() != "Off" {
		t.Fatalf("a wrong password: %v, power %s; want a refusal and no change", err, b.Power())
	}
	if _, err := run(b.Password, "-A", "Session", "Systems", "reset", "On"); err != nil || b.Power() != "On" {
		t.Fatalf("reset On: %v, power %s", err, b.Power())
	}
	if _, err := run(b.Password, "-A", "Basic", "Systems", "setBootOverride", "Once", "Pxe"); err != nil {
		t.Fatal(err)
	}
	if got := b.BootOverride(); got["BootSourceOverrideTarget"] != "Pxe" || got["BootSourceOverrideEnabled"] != "Once" {
		t.Errorf("boot override %v, want Pxe once", got)
	}
	var logins, logouts int
	for _, r := range b.Requests() {
		switch {
		case r.Method == "POST" && r.Path == redfishSessions:
			logins++
		case r.Method == "DELETE" && strings.HasPrefix(r.Path, redfishSessions+"/"):
			logouts++
		}
	}
	if logins != 3 || logouts != 2 {
		t.Errorf("%d session requests and %d logouts, want 3 (one refused) and 2", logins, logouts)
	}
}
