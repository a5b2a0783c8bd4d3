package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/syncproto"
)

// catalogueBase is what every case of TestApplyCatalogue starts from:
// sites s1 (region=eu), s2 (region=us) and s3 (region=eu, tier=edge);
// artifacts A and B held by c1; s1's own image "own" (revision 1).
func catalogueBase(t testing.TB) [][]byte {
	newSite := func(id string, labels map[string]string) []byte {
		return cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: id, CredentialHash: HashSecret("x"), CreatedAt: t0, Labels: labels}})
	}
	return [][]byte{
		newSite("s1", map[string]string{"region": "eu"}),
		newSite("s2", map[string]string{"region": "us"}),
		newSite("s3", map[string]string{"region": "eu", "tier": "edge"}),
		cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: uploaded(digA, 100), Create: true}),
		cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: uploaded(digB, 200), Create: true}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "own", Object: osImage("own", digA), Time: t0, By: "alice"}),
	}
}

// putCat is the command that puts catalogue image name, digest d, placed
// on sites and by labels, by bob.
func putCat(t testing.TB, name string, d artifact.Digest, sites []string, labels map[string]string) []byte {
	c := &CatalogueImage{Name: name, Image: osImage(name, d), Placement: Placement{Sites: sites, SiteLabels: labels}, UpdatedAt: t0, UpdatedBy: "bob"}
	return cmd(t, cmdPutCatalogueImage, &putCatalogueImagePayload{Image: c, Time: t0, By: "bob"})
}

func setLabels(t testing.TB, site string, labels map[string]string) []byte {
	return cmd(t, cmdSetSiteLabels, &setLabelsPayload{Site: site, Labels: labels, Time: t0, By: "carol"})
}

// desiredImages is every site's desired images: "site/key" -> the first
// two hex digits of its sha256; and every site's latest revision.
func desiredImages(t *testing.T, d *DB) (map[string]string, map[string]uint64) {
	t.Helper()
	sites, err := d.Sites()
	if err != nil {
		t.Fatal(err)
	}
	imgs, revs := map[string]string{}, map[string]uint64{}
	for _, s := range sites {
		revs[s.ID] = s.Revision
		its, err := d.ListDesired(s.ID, KindImage)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range its {
			var img syncproto.Image
			json.Unmarshal(it.Object, &img)
			imgs[s.ID+"/"+it.Key] = img.SHA256[:2]
		}
	}
	return imgs, revs
}

var eu = map[string]string{"region": "eu"}

// TestApplyCatalogue applies each catalogue or label command after
// before: its result, every site's desired images and latest revision
// after it. A refused command changes nothing.
func TestApplyCatalogue(t *testing.T) {
	placedEU := putCat(t, "debian-12", digA, nil, eu)
	tests := map[string]struct {
		before  [][]byte
		cmd     []byte
		want    any
		refused string
		images  map[string]string
		revs    map[string]uint64
	}{
		"placed by site list": {
			cmd: putCat(t, "debian-12", digA, []string{"s2"}, nil), want: uint64(1),
			images: map[string]string{"s1/own": "a1", "s2/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 1, "s2": 1, "s3": 0},
		},
		"placed by labels": {
			cmd: placedEU, want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1", "s3/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 0, "s3": 1},
		},
		"placed by both": {
			cmd: putCat(t, "debian-12", digA, []string{"s2"}, map[string]string{"tier": "edge"}), want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s2/debian-12": "a1", "s3/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 1, "s2": 1, "s3": 1},
		},
		"a label it lacks places nowhere": {
			cmd: putCat(t, "debian-12", digA, nil, map[string]string{"region": "eu", "tier": "core"}), want: uint64(0),
			images: map[string]string{"s1/own": "a1"},
			revs:   map[string]uint64{"s1": 1, "s2": 0, "s3": 0},
		},
		"the name moved to a new digest": {
			before: [][]byte{placedEU},
			cmd:    putCat(t, "debian-12", digB, nil, eu), want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "b2", "s3/debian-12": "b2"},
			revs:   map[string]uint64{"s1": 3, "s2": 0, "s3": 2},
		},
		"the same again changes nothing": {
			before: [][]byte{placedEU},
			cmd:    placedEU, want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1", "s3/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 0, "s3": 1},
		},
		"a narrower placement removes it": {
			before: [][]byte{placedEU},
			cmd:    putCat(t, "debian-12", digA, []string{"s1"}, nil), want: uint64(1),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 0, "s3": 2},
		},
		"a label change adds it": {
			before: [][]byte{placedEU},
			cmd:    setLabels(t, "s2", eu), want: uint64(1),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1", "s2/debian-12": "a1", "s3/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 1, "s3": 1},
		},
		"a label change removes it": {
			before: [][]byte{placedEU},
			cmd:    setLabels(t, "s3", map[string]string{"tier": "edge"}), want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 0, "s3": 2},
		},
		"a label change adds and removes in one revision": {
			before: [][]byte{placedEU, putCat(t, "ubuntu-24", digB, nil, map[string]string{"region": "us"})},
			cmd:    setLabels(t, "s3", map[string]string{"region": "us"}), want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1", "s2/ubuntu-24": "b2", "s3/ubuntu-24": "b2"},
			revs:   map[string]uint64{"s1": 2, "s2": 1, "s3": 2},
		},
		"a label change that matches nothing new": {
			before: [][]byte{placedEU},
			cmd:    setLabels(t, "s1", map[string]string{"region": "eu", "rack": "r1"}), want: uint64(2),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1", "s3/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 0, "s3": 1},
		},
		"a new site with matching labels gets it": {
			before: [][]byte{placedEU},
			cmd:    cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s4", CreatedAt: t0, Labels: eu}, By: "admin"}),
			images: map[string]string{"s1/own": "a1", "s1/debian-12": "a1", "s3/debian-12": "a1", "s4/debian-12": "a1"},
			revs:   map[string]uint64{"s1": 2, "s2": 0, "s3": 1, "s4": 1},
		},
		"deleted from every site": {
			before: [][]byte{placedEU},
			cmd:    cmd(t, cmdDeleteCatalogueImage, &deleteCatalogueImagePayload{Name: "debian-12", Time: t0, By: "bob"}), want: uint64(2),
			images: map[string]string{"s1/own": "a1"},
			revs:   map[string]uint64{"s1": 3, "s2": 0, "s3": 2},
		},
		"a site's own image of the name": {
			cmd: putCat(t, "own", digB, nil, eu), refused: errs.CodeConflict,
		},
		"an own image's name placed elsewhere is no conflict": {
			before: [][]byte{putCat(t, "own", digB, []string{"s2"}, nil)},
			cmd:    setLabels(t, "s1", map[string]string{"region": "eu", "x": "y"}), want: uint64(1),
			images: map[string]string{"s1/own": "a1", "s2/own": "b2"},
			revs:   map[string]uint64{"s1": 1, "s2": 1, "s3": 0},
		},
		"a label change that would place over a site's own image": {
			before: [][]byte{putCat(t, "own", digB, nil, map[string]string{"region": "us"})},
			cmd:    setLabels(t, "s1", map[string]string{"region": "us"}), refused: errs.CodeConflict,
		},
		"an unknown site listed": {
			cmd: putCat(t, "debian-12", digA, []string{"s1", "s9"}, nil), refused: errs.CodeNotFound,
		},
		"an artifact central does not hold": {
			cmd: putCat(t, "debian-12", digC, nil, eu), refused: errs.CodeInvalid,
		},
		"a bad label": {
			cmd: setLabels(t, "s1", map[string]string{"Region": "eu"}), refused: errs.CodeInvalid,
		},
		"a bad label value": {
			cmd: putCat(t, "debian-12", digA, nil, map[string]string{"region": "EU!"}), refused: errs.CodeInvalid,
		},
		"the labels of an unknown site": {
			cmd: setLabels(t, "s9", eu), refused: errs.CodeNotFound,
		},
		"a site's put over a placed image": {
			before:  [][]byte{placedEU},
			cmd:     cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s3", Kind: KindImage, Key: "debian-12", Object: osImage("debian-12", digB), Time: t0}),
			refused: errs.CodeConflict,
		},
		"a site's delete of a placed image": {
			before:  [][]byte{placedEU},
			cmd:     cmd(t, cmdDeleteDesired, &deleteDesiredPayload{Site: "s1", Kind: KindImage, Key: "debian-12", Time: t0}),
			refused: errs.CodeConflict,
		},
		"an artifact a catalogue image names, placed nowhere": {
			before:  [][]byte{putCat(t, "later", digB, nil, nil)},
			cmd:     cmd(t, cmdForgetArtifact, &forgetArtifactPayload{Digest: digB, Time: t0}),
			refused: errs.CodeConflict,
		},
		"an unknown catalogue image deleted": {
			cmd:     cmd(t, cmdDeleteCatalogueImage, &deleteCatalogueImagePayload{Name: "nope", Time: t0}),
			refused: errs.CodeNotFound,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, _ := openTest(t)
			applyNext(t, d, catalogueBase(t)...)
			for i, r := range applyNext(t, d, tc.before...) {
				if _, refused := r.(error); refused {
					t.Fatalf("before[%d] refused: %v", i, r)
				}
			}
			before := dump(t, d)
			r := applyNext(t, d, tc.cmd)[0]
			if tc.refused != "" {
				if code(r) != tc.refused {
					t.Fatalf("result %v, want a refusal %q", r, tc.refused)
				}
				if diff := cmp.Diff(before, dump(t, d)); diff != "" {
					t.Errorf("the refusal changed the store (-before +after):\n%s", diff)
				}
				return
			}
			if diff := cmp.Diff(tc.want, r); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			images, revs := desiredImages(t, d)
			if diff := cmp.Diff(tc.images, images); diff != "" {
				t.Errorf("desired images (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.revs, revs); diff != "" {
				t.Errorf("latest revisions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCatalogueRecords: the record of a placed image names the sites it
// is on with the revision that put it there; the revisions name who made
// them and carry the image; a label change's revision holds every change
// it made; an old digest stays catalogued once its name moves on.
func TestCatalogueRecords(t *testing.T) {
	d, _ := openTest(t)
	applyNext(t, d, catalogueBase(t)...)
	applyNext(t, d, putCat(t, "debian-12", digA, nil, eu), putCat(t, "ubuntu-24", digB, []string{"s2"}, nil))
	c, err := d.CatalogueImage("debian-12")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]uint64{"s1": 2, "s3": 1}, c.Placed); diff != "" || c.Digest() != digA || c.UpdatedBy != "bob" {
		t.Errorf("record %+v, digest %s (-want +got placed):\n%s", c, c.Digest(), diff)
	}
	applyNext(t, d, setLabels(t, "s2", eu), putCat(t, "debian-12", digB, nil, eu))
	revs, err := d.NextRevisions("s2", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range revs {
		for _, ch := range r.Changes {
			got = append(got, r.By+" "+ch.Key+" "+string(imageDigest(ch.Object))[:2])
		}
	}
	if diff := cmp.Diff([]string{"carol debian-12 a1", "bob debian-12 b2"}, got); diff != "" {
		t.Errorf("s2's revisions (-want +got):\n%s", diff)
	}
	if _, err := d.Artifact(digA); err != nil {
		t.Errorf("the digest the name moved off: %v, want it still catalogued", err)
	}
	list, err := d.CatalogueImages()
	if err != nil || len(list) != 2 || list[0].Name != "debian-12" || list[0].Placed["s2"] != 3 {
		t.Errorf("catalogue %+v, %v", list, err)
	}
}

// fullImage is an OS image as the API takes it: its format given.
func fullImage(name string, d artifact.Digest) json.RawMessage {
	return json.RawMessage(`{"name":"` + name + `","format":"raw.gz","sha256":"` + string(d) + `"}`)
}

func imageDigest(obj json.RawMessage) artifact.Digest {
	return (&CatalogueImage{Image: obj}).Digest()
}

// TestCatalogueReplayAndSnapshot: the same commands applied to two
// stores make the same state; a snapshot of it, restored, is the same
// state, catalogue and labels included.
func TestCatalogueReplayAndSnapshot(t *testing.T) {
	cmds := append(catalogueBase(t),
		putCat(t, "debian-12", digA, []string{"s2"}, eu),
		setLabels(t, "s3", map[string]string{"region": "us"}),
		putCat(t, "debian-12", digB, nil, map[string]string{"region": "us"}),
		putCat(t, "ubuntu-24", digB, []string{"s1"}, nil),
		cmd(t, cmdDeleteCatalogueImage, &deleteCatalogueImagePayload{Name: "ubuntu-24", Time: t0.Add(time.Minute), By: "bob"}))
	a, _ := openTest(t)
	b, _ := openTest(t)
	applyNext(t, a, cmds...)
	applyNext(t, b, cmds...)
	if diff := cmp.Diff(dump(t, a), dump(t, b)); diff != "" {
		t.Fatalf("two replays differ (-a +b):\n%s", diff)
	}
	restored, _ := openTest(t)
	if err := restored.Restore(snapshotOf(t, a)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dump(t, a), dump(t, restored)); diff != "" {
		t.Errorf("restored state (-source +restored):\n%s", diff)
	}
	c, err := restored.CatalogueImage("debian-12")
	s, _ := restored.Site("s3")
	if err != nil || len(c.Placed) != 2 || s.Labels["region"] != "us" {
		t.Errorf("restored record %+v (%v), site s3 labels %v", c, err, s.Labels)
	}
}

// TestCatalogueProposer: the typed methods check what needs no state,
// naming the field, before anything is proposed.
func TestCatalogueProposer(t *testing.T) {
	d, _ := openTest(t)
	if _, err := d.CreateSiteBy("admin", "s1", "", HashSecret("x"), eu); err != nil {
		t.Fatal(err)
	}
	if _, err := d.RecordArtifact("c1", uploaded(digA, 100), true); err != nil {
		t.Fatal(err)
	}
	idx := dump(t, d)
	tests := map[string]struct {
		fn    func() error
		field string
	}{
		"name": {func() error {
			_, err := d.PutCatalogueImage("bob", "Debian", osImage("Debian", digA), Placement{})
			return err
		}, "name"},
		"image": {func() error { _, err := d.PutCatalogueImage("bob", "x", nil, Placement{}); return err }, "image"},
		"image type": {func() error {
			_, err := d.PutCatalogueImage("bob", "x", json.RawMessage(`{"type":"vm"}`), Placement{})
			return err
		}, "image"},
		"sites": {func() error {
			_, err := d.PutCatalogueImage("bob", "x", fullImage("x", digA), Placement{Sites: []string{"S 1"}})
			return err
		}, "sites"},
		"site_labels": {func() error {
			_, err := d.PutCatalogueImage("bob", "x", fullImage("x", digA), Placement{SiteLabels: map[string]string{"": "x"}})
			return err
		}, "site_labels"},
		"labels": {func() error { _, err := d.SetSiteLabels("bob", "s1", map[string]string{"a": "B"}); return err }, "labels.a"},
	}
	for name, tc := range tests {
		e, ok := errs.AsError(tc.fn())
		if !ok || e.Code != errs.CodeInvalid || e.Field != tc.field {
			t.Errorf("%s: %v, want invalid naming %q", name, e, tc.field)
		}
	}
	if diff := cmp.Diff(idx, dump(t, d)); diff != "" {
		t.Errorf("refusals changed the store:\n%s", diff)
	}
	c, err := d.PutCatalogueImage("bob", "debian-12", fullImage("debian-12", digA), Placement{Sites: []string{"s1", "s1"}})
	if err != nil || len(c.Placement.Sites) != 1 || c.Placed["s1"] != 1 {
		t.Errorf("put: %+v, %v", c, err)
	}
	s, err := d.SetSiteLabels("bob", "s1", nil)
	if err != nil || s.Labels != nil || s.Revision != 1 {
		t.Errorf("labels removed: %+v, %v; want the image kept (listed) and no revision", s, err)
	}
}
