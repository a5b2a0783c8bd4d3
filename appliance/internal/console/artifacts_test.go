package console_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// artifactRow is the overview's row of one artifact: its state, the
// nodes that hold it and those that lack it.
var artifactRow = regexp.MustCompile(`(?s)<tr data-test="artifact" data-sha256="([0-9a-f]+)">.*?<td data-test="artifact-state">(.*?)</td><td data-test="artifact-nodes">(.*?)</td><td data-test="artifact-missing">(.*?)</td></tr>`)

// TestOverviewArtifacts: the site's overview lists each artifact the
// images point at, with its state, the leader's pull while it is
// missing, and the nodes that hold and lack it.
func TestOverviewArtifacts(t *testing.T) {
	e := start(t, false)
	c, _ := e.signIn(t, e.n.Token)
	sum := strings.Repeat("7e", 32)
	if _, err := e.n.Site.PutImage(t.Context(), &store.Image{Name: "debian-12", Type: store.ImageOS, SHA256: sum, Size: 1 << 30, Format: "raw"}, 0); err != nil {
		t.Fatal(err)
	}
	row := func() []string {
		t.Helper()
		_, page := e.do(t, http.MethodGet, "/site", nil, nil, c)
		m := artifactRow.FindStringSubmatch(page)
		if m == nil || m[1] != sum || !strings.Contains(page, "debian-12") || !strings.Contains(page, "1 GiB") {
			t.Fatalf("no row of the artifact in the overview:\n%s", page)
		}
		return m[2:]
	}
	// (The fixture's node records no member: no node is named missing.)
	if r := row(); !strings.Contains(r[0], "missing") || r[1] != "" {
		t.Errorf("missing artifact: %q", r)
	}
	if err := e.n.Site.ReportArtifact(t.Context(), site.ArtifactReport{Node: "n1", SHA256: sum, Kind: site.ArtifactPulling, Source: "central", Held: 1 << 29, Size: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if r := row(); !strings.Contains(r[0], "pulling") || !strings.Contains(r[0], "n1 from central: 50 %") {
		t.Errorf("pulling artifact: %q", r)
	}
	if err := e.n.Site.RecordArtifact(t.Context(), "n1", sum, 1<<30); err != nil {
		t.Fatal(err)
	}
	if r := row(); !strings.Contains(r[0], "present") || r[1] != "n1" || r[2] != "" {
		t.Errorf("present artifact: %q", r)
	}
}
