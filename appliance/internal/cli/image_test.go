package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
)

// TestImageCommands: the catalogue's image commands and site labels
// against a real central: put an image placed by label and by site,
// list and get it, move a site out of its label, refuse a name a site's
// own image has (naming the site), delete it from every site.
func TestImageCommands(t *testing.T) {
	cen := testcentral.Start(t)
	c := cclient.New(cen.URL, cen.Token, nil)
	file := filepath.Join(t.TempDir(), "debian-12.raw.gz")
	if err := os.WriteFile(file, []byte(strings.Repeat("debian 12 ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	digest := strings.TrimSpace(strings.TrimPrefix(mustOK(t, centralRun(t, cen, "", "artifact", "push", file, "--type", "os")), "sha256:"))
	for id, labels := range map[string]map[string]string{"ams1": {"region": "eu"}, "nyc1": {"region": "us"}} {
		if _, err := c.CreateSiteWithLabels(t.Context(), id, "", labels); err != nil {
			t.Fatal(err)
		}
	}

	out := mustOK(t, centralRun(t, cen, "", "image", "put", "debian-12", "--sha256", "sha256:"+digest, "--format", "raw.gz",
		"--label", "region=eu", "--site", "nyc1"))
	if !strings.Contains(out, "debian-12") || !strings.Contains(out, "region=eu") || !strings.Contains(out, "ams1(pending),nyc1(pending)") {
		t.Errorf("image put printed:\n%s", out)
	}
	var list []cclient.CatalogueImage
	if err := json.Unmarshal([]byte(mustOK(t, centralRun(t, cen, "", "image", "list", "-o", "json"))), &list); err != nil ||
		len(list) != 1 || list[0].SHA256 != digest || len(list[0].Placed) != 2 {
		t.Fatalf("image list: %+v, %v", list, err)
	}

	if out := mustOK(t, centralRun(t, cen, "", "site", "labels", "ams1", "region=us", "rack=r7")); out != "site ams1 labels rack=r7,region=us (revision 2)\n" {
		t.Errorf("site labels printed %q", out)
	}
	if objs, err := c.List(t.Context(), "ams1", "images"); err != nil || len(objs) != 0 {
		t.Errorf("ams1's images once it left eu: %s, %v", objs, err)
	}
	var img cclient.CatalogueImage
	if err := json.Unmarshal([]byte(mustOK(t, centralRun(t, cen, "", "image", "get", "debian-12", "-o", "json"))), &img); err != nil ||
		len(img.Placed) != 1 || img.Placed[0].Site != "nyc1" {
		t.Errorf("image get: %+v, %v", img, err)
	}

	if _, err := c.Put(t.Context(), "nyc1", "images", "own", json.RawMessage(`{"format":"raw","sha256":"`+digest+`"}`)); err != nil {
		t.Fatal(err)
	}
	if r := centralRun(t, cen, "", "image", "put", "own", "--sha256", digest, "--format", "raw", "--site", "nyc1"); r.code != 1 || !strings.Contains(r.stderr, "site nyc1") {
		t.Errorf("a name a site's own image has: exit %d, %s", r.code, r.stderr)
	}
	if r := centralRun(t, cen, "", "site", "labels", "ams1", "region"); r.code != 2 {
		t.Errorf("a label without '=': exit %d, want a usage error", r.code)
	}

	if out := mustOK(t, centralRun(t, cen, "", "image", "delete", "debian-12")); out != "image debian-12 deleted\n" {
		t.Errorf("image delete printed %q", out)
	}
	if objs, err := c.List(t.Context(), "nyc1", "images"); err != nil || len(objs) != 1 {
		t.Errorf("nyc1's images after the delete: %s, %v; want its own only", objs, err)
	}
}
