package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/syncproto"
)

// createLabeled creates a site with labels through the API and returns
// its credential.
func (e *env) createLabeled(id, labels string) string {
	e.t.Helper()
	var out client.SiteCreated
	if code := e.do("POST", "/v1/sites", fmt.Sprintf(`{"id":%q,"labels":%s}`, id, labels), &out); code != http.StatusCreated {
		e.t.Fatalf("create site %s: %d", id, code)
	}
	return out.Credential
}

// pushed uploads a small artifact and returns its digest.
func (e *env) pushed() string {
	e.t.Helper()
	b, sum := blob(e.t, 1000)
	if code, _, ae := e.upload(b, "sha256="+sum+"&type=os"); code != http.StatusCreated {
		e.t.Fatalf("upload: %d %+v", code, ae)
	}
	return sum
}

// imageBody is the body of PUT /v1/images/{name}: an OS image of digest
// sum, placed as placement says (JSON fields, or "").
func imageBody(sum, placement string) string {
	if placement != "" {
		placement = "," + placement
	}
	return fmt.Sprintf(`{"image":{"format":"raw.gz","sha256":%q}%s}`, sum, placement)
}

// siteImages lists the names of a site's desired images, through the
// API.
func (e *env) siteImages(site string) []string {
	e.t.Helper()
	var page struct{ Images []syncproto.Image }
	if code := e.do("GET", "/v1/sites/"+site+"/images", "", &page); code != http.StatusOK {
		e.t.Fatalf("list %s's images: %d", site, code)
	}
	var names []string
	for _, img := range page.Images {
		names = append(names, img.Name+"@"+img.SHA256[:8])
	}
	return names
}

// TestCatalogueAPI: a catalogue image is placed on the sites its labels
// and list match, shown with them, moved to a new digest on every site
// at once, followed by a label change, and deleted from every site; the
// revisions name the token; a site's own image of the name is refused,
// naming the site; bad input names its field and changes nothing.
func TestCatalogueAPI(t *testing.T) {
	e := newEnv(t)
	e.createLabeled("ams1", `{"region":"eu"}`)
	e.createLabeled("fra1", `{"region":"eu","tier":"edge"}`)
	e.createLabeled("nyc1", `{"region":"us"}`)
	a, b := e.pushed(), e.pushed()
	bob := e.newToken("bob", access.Operator)

	var img client.CatalogueImage
	if code := e.doToken(bob, "PUT", "/v1/images/debian-12", imageBody(a, `"site_labels":{"region":"eu"}`), &img); code != http.StatusOK {
		t.Fatalf("put: %d %+v", code, img)
	}
	want := []client.PlacedSite{{Site: "ams1", Revision: 1}, {Site: "fra1", Revision: 1}}
	if diff := cmp.Diff(want, img.Placed); diff != "" || img.SHA256 != a || img.UpdatedBy != "bob" {
		t.Errorf("put answered %+v (-want +got placed):\n%s", img, diff)
	}
	if got := e.siteImages("ams1"); !slices.Equal(got, []string{"debian-12@" + a[:8]}) {
		t.Errorf("ams1's images %q", got)
	}

	// The name moves to b, and nyc1 joins by id: every site in one put.
	if code := e.doToken(bob, "PUT", "/v1/images/debian-12", imageBody(b, `"site_labels":{"region":"eu"},"sites":["nyc1"]`), &img); code != http.StatusOK {
		t.Fatalf("move: %d", code)
	}
	for _, site := range []string{"ams1", "fra1", "nyc1"} {
		if got := e.siteImages(site); !slices.Equal(got, []string{"debian-12@" + b[:8]}) {
			t.Errorf("%s's images after the move %q", site, got)
		}
	}
	var site client.Site
	if code := e.doToken(bob, "PUT", "/v1/sites/fra1/labels", `{"labels":{"region":"ap"}}`, &site); code != http.StatusOK || site.Labels["region"] != "ap" {
		t.Fatalf("set labels: %d %+v", code, site)
	}
	if got := e.siteImages("fra1"); len(got) != 0 {
		t.Errorf("fra1's images after it left eu: %q", got)
	}
	var list struct{ Sites []client.Site }
	if code := e.do("GET", "/v1/sites?label=region=eu", "", &list); code != http.StatusOK || len(list.Sites) != 1 || list.Sites[0].ID != "ams1" {
		t.Errorf("sites in eu: %d %+v", code, list)
	}

	var page struct{ Revisions []struct{ By string } }
	e.do("GET", "/v1/sites/fra1/revisions", "", &page)
	var by []string
	for _, r := range page.Revisions {
		by = append(by, r.By)
	}
	if !slices.Equal(by, []string{"bob", "bob", "bob"}) {
		t.Errorf("fra1's revisions were made by %q, want bob's three (put, move, labels)", by)
	}

	// nyc1 has its own image "own": the catalogue's "own" is refused.
	if code := e.do("PUT", "/v1/sites/nyc1/images/own", fmt.Sprintf(`{"format":"raw","sha256":%q}`, a), nil); code != http.StatusOK {
		t.Fatalf("nyc1's own image: %d", code)
	}
	before := e.db.AppliedIndex()
	var ae apiError
	if code := e.do("PUT", "/v1/images/own", imageBody(a, `"sites":["ams1","nyc1"]`), &ae); code != http.StatusConflict || !strings.Contains(ae.Error.Message, "site nyc1") {
		t.Errorf("a catalogue image over a site's own: %d %+v", code, ae)
	}
	if code := e.do("PUT", "/v1/sites/ams1/images/debian-12", fmt.Sprintf(`{"format":"raw","sha256":%q}`, a), &ae); code != http.StatusConflict {
		t.Errorf("a site's put over a placed image: %d %+v", code, ae)
	}
	for field, body := range map[string]string{
		"image":              `{"sites":["ams1"]}`,
		"image.format":       `{"image":{"format":"tar","sha256":"` + a + `"}}`,
		"site_labels":        imageBody(a, `"site_labels":{"Region":"eu"}`),
		"site_labels.region": imageBody(a, `"site_labels":{"region":"EU"}`),
		"sites":              imageBody(a, `"sites":["no such"]`),
		"placement":          imageBody(a, `"placement":{}`),
	} {
		var ae apiError
		if code := e.do("PUT", "/v1/images/x", body, &ae); code != http.StatusBadRequest || ae.Error.Field != field {
			t.Errorf("%s: %d %+v, want 400 naming %s", body, code, ae, field)
		}
	}
	if code := e.do("PUT", "/v1/sites/ams1/labels", `{"labels":{"region":"EU"}}`, &ae); code != http.StatusBadRequest || ae.Error.Field != "labels.region" {
		t.Errorf("a bad label: %d %+v", code, ae)
	}
	if after := e.db.AppliedIndex(); after != before {
		t.Errorf("the refusals moved the applied index from %d to %d", before, after)
	}

	if code := e.doToken(bob, "DELETE", "/v1/images/debian-12", "", nil); code != http.StatusOK {
		t.Fatalf("delete: %d", code)
	}
	for _, site := range []string{"ams1", "nyc1"} {
		if got := e.siteImages(site); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "debian-12@") }) {
			t.Errorf("%s's images after the delete: %q", site, got)
		}
	}
	if code := e.do("GET", "/v1/images/debian-12", "", nil); code != http.StatusNotFound {
		t.Errorf("get after the delete: %d", code)
	}
}

// TestSiteSyncGetsPlacedImage: a site connected to central receives the
// image the catalogue placed on it, pulls the artifact it names, and
// receives its removal when its labels change; the catalogue shows when
// the site acknowledged the revision.
func TestSiteSyncGetsPlacedImage(t *testing.T) {
	e := newEnv(t)
	cred := e.createLabeled("ams1", `{"region":"eu"}`)
	sum := e.pushed()
	conn := e.connect("ams1", cred)
	if code := e.do("PUT", "/v1/images/debian-12", imageBody(sum, `"site_labels":{"region":"eu"}`), nil); code != http.StatusOK {
		t.Fatalf("put: %d", code)
	}
	d, ok := recv(t, conn).(*syncproto.Desired)
	if !ok || d.Revision != 1 || len(d.Changes) != 1 || d.Changes[0].Kind != syncproto.KindImage || d.Changes[0].Key != "debian-12" {
		t.Fatalf("first desired: %+v", d)
	}
	var got syncproto.Image
	if err := json.Unmarshal(d.Changes[0].Object, &got); err != nil || got.SHA256 != sum {
		t.Errorf("the image sent: %s (%v)", d.Changes[0].Object, err)
	}
	if code, _ := e.send("GET", "/v1/sites/ams1/artifacts/"+sum, nil, "Authorization", "Bearer "+cred); code != http.StatusOK {
		t.Errorf("the site's pull of the placed image's artifact: %d", code)
	}
	send(t, conn, &syncproto.DesiredAck{Revision: 1})
	waitAcked(t, e, "debian-12", "ams1")

	if code := e.do("PUT", "/v1/sites/ams1/labels", `{"labels":{"region":"us"}}`, nil); code != http.StatusOK {
		t.Fatalf("set labels: %d", code)
	}
	d, ok = recv(t, conn).(*syncproto.Desired)
	if !ok || d.Revision != 2 || len(d.Changes) != 1 || !d.Changes[0].Deleted || d.Changes[0].Key != "debian-12" {
		t.Fatalf("desired after the label change: %+v", d)
	}
	var img client.CatalogueImage
	if code := e.do("GET", "/v1/images/debian-12", "", &img); code != http.StatusOK || len(img.Placed) != 0 {
		t.Errorf("the image after its site left: %d %+v", code, img)
	}
}

// waitAcked waits until the catalogue shows image acknowledged by site.
func waitAcked(t *testing.T, e *env, image, site string) {
	t.Helper()
	centraltest.WaitFor(t, image+" acknowledged by "+site, func() bool {
		var img client.CatalogueImage
		e.do("GET", "/v1/images/"+image, "", &img)
		return len(img.Placed) == 1 && img.Placed[0].Site == site && img.Placed[0].Acked
	})
}
