package cli_test

import (
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/site"
)

// TestBMCAcceptCertificate: the machine table shows what the appliance
// knows of a BMC's certificate, the machine's own view shows the
// fingerprints in full and how to accept one; bmc accept-certificate
// accepts the one presented, or the one given (openssl's form too), and
// says what is wrong otherwise.
func TestBMCAcceptCertificate(t *testing.T) {
	parallel(t)
	s := startSite(t)
	s.mustRun(t, `{"kind":"machine","id":"m1","bmc":{"address":"198.18.1.1","driver":"redfish","username":"admin","password":"`+bmcPassword+`"}}`, "apply", "-f", "-")
	if r := s.run(t, "", "bmc", "accept-certificate", "m1"); r.code != 1 || !strings.Contains(r.stderr, "presented no certificate") {
		t.Errorf("accept with nothing presented: exit %d %q, want 1 saying nothing was presented", r.code, r.stderr)
	}
	first := "sha256:" + strings.Repeat("a1", 32)
	p := cluster.NewSite(s.node, site.ProposerConfig{Key: s.key})
	if err := p.RecordBMCCertificate(t.Context(), "m1", "198.18.1.1", first); err != nil {
		t.Fatal(err)
	}
	rows := table(s.mustRun(t, "", "get", "machines"))
	if got := strings.Join(rows[1], " "); !strings.Contains(got, "NOT ACCEPTED sha256:a1a1a1a1a1a1…") {
		t.Errorf("machine row %q: want the presented certificate, not accepted", got)
	}
	detail := s.mustRun(t, "", "get", "machine", "m1")
	if !strings.Contains(detail, "BMC certificate presented: "+first) || !strings.Contains(detail, "outpost bmc accept-certificate m1 "+first) {
		t.Errorf("get machine m1:\n%s\nwant the presented certificate in full and how to accept it", detail)
	}
	if out := s.mustRun(t, "", "bmc", "accept-certificate", "m1"); out != "machine m1: BMC certificate "+first+" accepted\n" {
		t.Errorf("accept the presented one: %q", out)
	}
	if got := strings.Join(table(s.mustRun(t, "", "get", "machines"))[1], " "); !strings.Contains(got, "accepted sha256:a1a1a1a1a1a1…") {
		t.Errorf("machine row %q: want the certificate accepted", got)
	}

	openssl := "SHA256 Fingerprint=" + strings.TrimSuffix(strings.Repeat("B2:", 32), ":")
	if out := s.mustRun(t, "", "bmc", "accept-certificate", "m1", openssl); !strings.Contains(out, "sha256:"+strings.Repeat("b2", 32)+" accepted") {
		t.Errorf("accept openssl's form: %q", out)
	}
	if r := s.run(t, "", "bmc", "accept-certificate", "m1", "b2b2"); r.code != 1 || !strings.Contains(r.stderr, `"b2b2" is not a SHA-256 fingerprint`) {
		t.Errorf("accept garbage: exit %d %q, want 1 naming it", r.code, r.stderr)
	}
	if r := s.run(t, "", "bmc", "accept-certificate"); r.code != 2 {
		t.Errorf("accept without a machine: exit %d, want 2 (usage)", r.code)
	}
	if r := s.run(t, "", "bmc", "accept-certificate", "m9", first); r.code != 1 || !strings.Contains(r.stderr, "404") {
		t.Errorf("accept for an unknown machine: exit %d %q", r.code, r.stderr)
	}
}
