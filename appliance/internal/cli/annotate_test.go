package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
)

// TestAnnotateCommands: annotate records an incident at a real central,
// fleet-wide or a site's, with a window given as times or a duration;
// annotation list shows them; bad input is refused naming what was
// wrong, and recorded nothing; a site's server is told annotations are
// central's.
func TestAnnotateCommands(t *testing.T) {
	cen := testcentral.Start(t)
	if _, err := cclient.New(cen.URL, cen.Token, nil).CreateSite(t.Context(), "ams1", ""); err != nil {
		t.Fatal(err)
	}
	out := mustOK(t, centralRun(t, cen, "", "annotate", "wan.partition", "uplink", "cut", "--site", "ams1",
		"--start", "2026-12-07T12:00:00Z", "--end", "2026-12-07T12:10:00Z"))
	if !strings.Contains(out, "annotation 1: wan.partition") || !strings.Contains(out, "site ams1") {
		t.Errorf("annotate printed %q", out)
	}
	mustOK(t, centralRun(t, cen, "", "annotate", "power", "--start", "1h", "--for", "5m"))
	for name, tc := range map[string]struct {
		args []string
		says string
	}{
		"end before start": {[]string{"annotate", "x", "--start", "2026-12-07T12:00:00Z", "--end", "2026-12-07T11:00:00Z"}, "end"},
		"unknown site":     {[]string{"annotate", "x", "--site", "nowhere"}, "nowhere"},
		"empty kind":       {[]string{"annotate", " "}, "kind"},
		"bad time":         {[]string{"annotate", "x", "--start", "noon"}, `--start "noon"`},
		"end and for":      {[]string{"annotate", "x", "--end", "1h", "--for", "5m"}, "give one"},
	} {
		r := centralRun(t, cen, "", tc.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.says) {
			t.Errorf("%s: exit %d %q, want a failure saying %q", name, r.code, r.stderr, tc.says)
		}
	}
	var list []cclient.Annotation
	if err := json.Unmarshal([]byte(mustOK(t, centralRun(t, cen, "", "annotation", "list", "-o", "json"))), &list); err != nil || len(list) != 2 {
		t.Fatalf("annotation list: %+v %v, want the two recorded", list, err)
	}
	if list[0].Kind != "power" || list[0].End.Sub(list[0].Start) != 5*time.Minute || list[1].Text != "uplink cut" {
		t.Errorf("annotations %+v", list)
	}
	table := mustOK(t, centralRun(t, cen, "", "annotation", "list", "--site", "ams1", "--since", "2026-12-07T11:00:00Z", "--until", "2026-12-07T13:00:00Z"))
	if !strings.Contains(table, "wan.partition") || strings.Contains(table, "power") {
		t.Errorf("ams1's annotations around noon:\n%s", table)
	}
	r := runCLI(t, "", "--server", "http://127.0.0.1:1", "--token", "x", "annotate", "x")
	if r.code == 0 || !strings.Contains(r.stderr, "annotations are recorded at central") {
		t.Errorf("annotate at a site: exit %d %q", r.code, r.stderr)
	}
}

// TestAnnotateMidUpgrade: while central refuses annotations because a
// node runs an older release (503), outpost annotate fails with
// central's message as it is, and its status. (TestCentralRollingUpgradeSkew
// checks the same against a real central of two releases.)
func TestAnnotateMidUpgrade(t *testing.T) {
	const msg = "central is mid-upgrade: node c2 does not apply annotations yet (its release applies command types up to 28, annotations are type 29); retry once every node runs this release"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/annotations" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "unavailable", "message": msg}})
	}))
	defer srv.Close()
	r := runCLI(t, "", "--central", srv.URL, "--token", "x", "annotate", "upgrade", "halfway")
	if want := "outpost: " + msg + " (HTTP 503)\n"; r.code == 0 || r.stderr != want {
		t.Errorf("annotate mid-upgrade: exit %d %q; want %q", r.code, r.stderr, want)
	}
}
