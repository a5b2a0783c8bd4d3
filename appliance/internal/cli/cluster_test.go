package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/internal/testwait"
)

// An operator rotates the site's CA with the CLI: finish is refused with
// no rotation under way; begin makes generation 2 current, which the
// status shows with the member renewed; finish then trusts 2 alone. A
// step that is neither is refused before anything is sent.
func TestClusterRotateCA(t *testing.T) {
	parallel(t)
	s := startSite(t)
	if r := s.run(t, "", "cluster", "rotate-ca", "sideways"); r.code == 0 || !strings.Contains(r.stderr, `"sideways" is not a step`) {
		t.Errorf("rotate-ca sideways: exit %d, %q", r.code, r.stderr)
	}
	if r := s.run(t, "", "cluster", "rotate-ca", "finish"); r.code != 1 || !strings.Contains(r.stderr, "no rotation of the site's CA is under way") {
		t.Errorf("finish with none under way: exit %d, %q", r.code, r.stderr)
	}
	out := s.mustRun(t, "", "cluster", "rotate-ca", "begin")
	if !strings.HasPrefix(out, "site CA rotation begun: generation 2 is current, 1 still trusted") {
		t.Errorf("begin: %q", out)
	}
	var st site.Status
	testwait.For(t, "n1 to report its renewal", 30*time.Second, func() bool {
		if err := json.Unmarshal([]byte(s.mustRun(t, "", "cluster", "status", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		return len(st.Members) == 1 && st.Members[0].Renewed
	})
	if st.CA == nil || st.CA.Generation != 2 || !st.CA.Rotating || len(st.CA.CAs) != 2 || st.CA.CAs[0].Fingerprint == st.CA.CAs[1].Fingerprint {
		t.Errorf("the CA during the rotation: %+v", st.CA)
	}
	if out := s.mustRun(t, "", "cluster", "status"); !strings.Contains(out, "site CA generation 2 (") || !strings.Contains(out, "rotating from 1 (") {
		t.Errorf("status during the rotation:\n%s", out)
	}
	if out := s.mustRun(t, "", "cluster", "rotate-ca", "finish"); out != "site CA rotation finished: only generation 2 is trusted\n" {
		t.Errorf("finish: %q", out)
	}
	if err := json.Unmarshal([]byte(s.mustRun(t, "", "cluster", "status", "-o", "json")), &st); err != nil || st.CA.Rotating || len(st.CA.CAs) != 1 || st.CA.CAs[0].Generation != 2 {
		t.Errorf("the CA after finish: %+v, %v", st.CA, err)
	}
}
