package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
)

// TestCatalogueCalls: the image catalogue's calls and site labels
// against a real (replicated) central, whose answers decode strictly
// into the client's types.
func TestCatalogueCalls(t *testing.T) {
	cen := testcentral.Start(t, testcentral.Replicated(t))
	c := client.New(cen.URL, cen.Token, nil)
	ctx := t.Context()
	pushed, err := c.PushArtifact(ctx, strings.NewReader("debian 12"), 9, client.PushOptions{Type: "os"})
	if err != nil {
		t.Fatal(err)
	}
	digest := pushed.SHA256
	if _, err := c.CreateSiteWithLabels(ctx, "ams-1", "", map[string]string{"region": "eu"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSite(ctx, "nyc-1", ""); err != nil {
		t.Fatal(err)
	}
	img, err := c.PutImage(ctx, "debian-12", client.PutImageRequest{Image: json.RawMessage(`{"format":"raw.gz","sha256":"` + digest + `"}`),
		Placement: client.Placement{SiteLabels: map[string]string{"region": "eu"}}})
	if err != nil || img.SHA256 != digest || len(img.Placed) != 1 || img.Placed[0].Site != "ams-1" {
		t.Fatalf("put image: %+v, %v", img, err)
	}
	var raw json.RawMessage
	for path, v := range map[string]any{"/v1/images/debian-12": new(client.CatalogueImage), "/v1/sites/ams-1": new(client.Site)} {
		if err := c.Do(ctx, http.MethodGet, path, nil, &raw); err != nil {
			t.Fatal(err)
		}
		strict(t, path, raw, v)
	}
	site, err := c.SetSiteLabels(ctx, "nyc-1", map[string]string{"region": "eu"})
	if err != nil || site.Labels["region"] != "eu" || site.Sync.LatestRevision != 1 {
		t.Fatalf("set labels: %+v, %v", site, err)
	}
	if list, err := c.Images(ctx); err != nil || len(list) != 1 || len(list[0].Placed) != 2 {
		t.Errorf("list: %+v, %v", list, err)
	}
	if err := c.DeleteImage(ctx, "debian-12"); err != nil {
		t.Fatal(err)
	}
	var e *client.Error
	if _, err := c.Image(ctx, "debian-12"); !errors.As(err, &e) || e.Status != http.StatusNotFound {
		t.Errorf("a deleted image: %v, want 404", err)
	}
	if objs, err := c.List(ctx, "nyc-1", "images"); err != nil || len(objs) != 0 {
		t.Errorf("nyc-1's images after the delete: %s, %v", objs, err)
	}
}
