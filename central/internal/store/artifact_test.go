package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
)

// Digests of the tests' artifacts.
var (
	digA = artifact.Digest(strings.Repeat("a1", 32))
	digB = artifact.Digest(strings.Repeat("b2", 32))
	digC = artifact.Digest(strings.Repeat("c3", 32))
)

func uploaded(d artifact.Digest, size int64) *Artifact {
	return &Artifact{Digest: d, Size: size, Name: "debian-12", Type: ArtifactOS, Source: ArtifactSource{Upload: "alice"},
		CreatedAt: t0, CreatedBy: "alice"}
}

func osImage(name string, d artifact.Digest) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"name":%q,"sha256":%q}`, name, d))
}

// artifactBase is what every case of TestApplyArtifacts starts from:
// site s1; artifact A uploaded to c1 and copied by c2, named by s1's
// image i1; artifact B registered from a URL, held by none.
func artifactBase(t testing.TB) [][]byte {
	return [][]byte{
		cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s1", CredentialHash: HashSecret("x"), CreatedAt: t0}}),
		cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: uploaded(digA, 100), Create: true}),
		cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c2", Artifact: &Artifact{Digest: digA, Size: 100}}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "i1", Object: osImage("i1", digA), Time: t0}),
		cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: &Artifact{Digest: digB, Size: 50, Type: ArtifactKernel,
			Source: ArtifactSource{URL: "https://images.example.com/vmlinuz?sig=secret"}, CreatedAt: t0, CreatedBy: "bob"}}),
	}
}

func holders(t *testing.T, d *DB, digest artifact.Digest) []string {
	t.Helper()
	a, err := d.Artifact(digest)
	if err != nil {
		t.Fatalf("artifact %s: %v", digest.Short(), err)
	}
	return a.Nodes
}

// TestApplyArtifacts applies each artifact command on its own: its
// result, and the state after. A refused command changes nothing.
func TestApplyArtifacts(t *testing.T) {
	installer := json.RawMessage(fmt.Sprintf(`{"name":"hook","type":"installer","kernel":"sha256:%s","initrd":"sha256:%s"}`, digB, digC))
	tests := map[string]struct {
		cmd     []byte
		want    any
		refused string
		check   func(t *testing.T, d *DB)
	}{
		"record a new upload": {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c2", Artifact: uploaded(digC, 7), Create: true}), want: uint64(1),
			check: func(t *testing.T, d *DB) {
				a, _ := d.Artifact(digC)
				want := uploaded(digC, 7)
				want.Nodes = []string{"c2"}
				if diff := cmp.Diff(want, a); diff != "" {
					t.Errorf("record (-want +got):\n%s", diff)
				}
			}},
		"record a copy": {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c3", Artifact: &Artifact{Digest: digA, Size: 100}}), want: uint64(3),
			check: func(t *testing.T, d *DB) {
				if diff := cmp.Diff([]string{"c1", "c2", "c3"}, holders(t, d, digA)); diff != "" {
					t.Errorf("holders (-want +got):\n%s", diff)
				}
			}},
		"record a copy again": {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: &Artifact{Digest: digA, Size: 100}}), want: uint64(2)},
		"record an upload of a catalogued digest": {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c3",
			Artifact: &Artifact{Digest: digA, Size: 100, Name: "other", Type: ArtifactFile, Source: ArtifactSource{Upload: "eve"}}, Create: true}), want: uint64(3),
			check: func(t *testing.T, d *DB) {
				if a, _ := d.Artifact(digA); a.Name != "debian-12" || a.CreatedBy != "alice" {
					t.Errorf("record %+v: the first upload's metadata stays", a)
				}
			}},
		"record the leader's fetch": {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: &Artifact{Digest: digB, Size: 50}}), want: uint64(1)},
		"record a copy of nothing":  {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: &Artifact{Digest: digC, Size: 7}}), refused: errs.CodeNotFound},
		"record another size":       {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c3", Artifact: &Artifact{Digest: digA, Size: 99}}), refused: errs.CodeConflict},
		"record a bad digest":       {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: uploaded("A1"+digA[2:], 100), Create: true}), refused: errs.CodeInvalid},
		"record no node":            {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Artifact: uploaded(digC, 7), Create: true}), refused: errs.CodeInvalid},
		"record no source":          {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: &Artifact{Digest: digC, Size: 7, Type: ArtifactOS}, Create: true}), refused: errs.CodeInvalid},
		"record a bad type":         {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: &Artifact{Digest: digC, Size: 7, Type: "iso", Source: ArtifactSource{Upload: "a"}}, Create: true}), refused: errs.CodeInvalid},
		"record nothing":            {cmd: cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1"}), refused: errs.CodeInvalid},
		"register": {cmd: cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: &Artifact{Digest: digC, Size: 9, Type: ArtifactInitrd,
			Source: ArtifactSource{URL: "http://mirror/initrd"}, CreatedAt: t0, CreatedBy: "bob"}}), want: uint64(0),
			check: func(t *testing.T, d *DB) {
				if a, err := d.Artifact(digC); err != nil || a.Source.URL != "http://mirror/initrd" || len(a.Nodes) != 0 || a.CreatedBy != "bob" {
					t.Errorf("registered: %+v, %v", a, err)
				}
			}},
		"register again as it is": {cmd: cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: &Artifact{Digest: digB, Size: 50, Type: ArtifactKernel,
			Source: ArtifactSource{URL: "https://images.example.com/vmlinuz?sig=secret"}, CreatedAt: t0.Add(time.Hour), CreatedBy: "carol"}}), want: uint64(0),
			check: func(t *testing.T, d *DB) {
				if a, _ := d.Artifact(digB); a.CreatedBy != "bob" {
					t.Errorf("registering again changed the record: %+v", a)
				}
			}},
		"register an uploaded digest": {cmd: cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: &Artifact{Digest: digA, Size: 100, Type: ArtifactOS,
			Source: ArtifactSource{URL: "http://mirror/a"}}}), refused: errs.CodeConflict},
		"register another url": {cmd: cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: &Artifact{Digest: digB, Size: 50, Type: ArtifactKernel,
			Source: ArtifactSource{URL: "http://mirror/b"}}}), refused: errs.CodeConflict},
		"register not a url": {cmd: cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: &Artifact{Digest: digC, Size: 9, Type: ArtifactOS,
			Source: ArtifactSource{URL: "ftp://mirror/c"}}}), refused: errs.CodeInvalid},
		"register an upload": {cmd: cmd(t, cmdRegisterArtifact, &registerArtifactPayload{Artifact: uploaded(digC, 9)}), refused: errs.CodeInvalid},
		"forget a copy": {cmd: cmd(t, cmdForgetArtifact, &forgetArtifactPayload{Digest: digA, Node: "c1", Time: t0}), want: uint64(1),
			check: func(t *testing.T, d *DB) {
				if diff := cmp.Diff([]string{"c2"}, holders(t, d, digA)); diff != "" {
					t.Errorf("holders (-want +got):\n%s", diff)
				}
			}},
		"forget a copy not held": {cmd: cmd(t, cmdForgetArtifact, &forgetArtifactPayload{Digest: digA, Node: "c9", Time: t0}), want: uint64(2)},
		"delete": {cmd: cmd(t, cmdForgetArtifact, &forgetArtifactPayload{Digest: digB, Time: t0, By: "bob"}), want: uint64(0),
			check: func(t *testing.T, d *DB) {
				if _, err := d.Artifact(digB); !errors.Is(err, errs.ErrNotFound) {
					t.Errorf("after the delete: %v", err)
				}
			}},
		"delete named by an image":              {cmd: cmd(t, cmdForgetArtifact, &forgetArtifactPayload{Digest: digA, Time: t0}), refused: errs.CodeConflict},
		"delete unknown":                        {cmd: cmd(t, cmdForgetArtifact, &forgetArtifactPayload{Digest: digC, Time: t0}), refused: errs.CodeNotFound},
		"put an image of a catalogued artifact": {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "i2", Object: osImage("i2", digB), Time: t0}), want: uint64(2)},
		"put an image of an unknown artifact":   {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "i2", Object: osImage("i2", digC), Time: t0}), refused: errs.CodeInvalid},
		"put an installer of an unknown initrd": {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "hook", Object: installer, Time: t0}), refused: errs.CodeInvalid},
		"put an image with a url": {cmd: cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s1", Kind: KindImage, Key: "i3",
			Object: json.RawMessage(fmt.Sprintf(`{"name":"i3","url":"http://x/i3","sha256":%q}`, digC)), Time: t0}), want: uint64(2)},
		"count sent": {cmd: cmd(t, cmdCountArtifactSent, &countSentPayload{Counts: []SentCount{{Site: "s1", Digest: digA, Bytes: 60}, {Site: "s1", Digest: digA, Bytes: 40}, {Site: "s1", Digest: digC, Bytes: 5}}}),
			want: uint64(105), check: func(t *testing.T, d *DB) {
				if a, _ := d.Artifact(digA); a.SentBytes["s1"] != 100 {
					t.Errorf("sent of A: %v, want 100 to s1", a.SentBytes)
				}
				if s := site(t, d); s.ArtifactSentBytes != 105 {
					t.Errorf("site s1 sent %d bytes, want 105 (an artifact since deleted counts for the site)", s.ArtifactSentBytes)
				}
			}},
		"count sent to an unknown site": {cmd: cmd(t, cmdCountArtifactSent, &countSentPayload{Counts: []SentCount{{Site: "s1", Digest: digA, Bytes: 1}, {Site: "s9", Digest: digA, Bytes: 1}}}), refused: errs.CodeNotFound},
		"count nothing sent":            {cmd: cmd(t, cmdCountArtifactSent, &countSentPayload{Counts: []SentCount{{Site: "s1", Digest: digA}}}), refused: errs.CodeInvalid},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			d, _ := openTest(t)
			for i, r := range applyNext(t, d, artifactBase(t)...) {
				if err, ok := r.(error); ok {
					t.Fatalf("base command %d refused: %v", i, err)
				}
			}
			before := dump(t, d)
			got := applyNext(t, d, tc.cmd)[0]
			if c := code(got); c != tc.refused || (tc.refused == "" && got != tc.want) {
				t.Errorf("result %v (%T), want %v refused %q", got, got, tc.want, tc.refused)
			}
			if diff := cmp.Diff(before, dump(t, d)); tc.refused != "" && diff != "" {
				t.Errorf("a refused command changed the store (-before +after):\n%s", diff)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestArtifactRefusals: the refusals an operator reads name what is at
// fault: the image's field and the command to run; the images that name
// an artifact being deleted; never a registered URL's query.
func TestArtifactRefusals(t *testing.T) {
	d, _ := openTest(t)
	applyNext(t, d, artifactBase(t)...)
	_, err := d.PutDesired("s1", KindImage, "i2", osImage("i2", digC))
	want := "sha256: sha256:" + digC.Short() + "… is not an artifact central holds: upload it first (outpost --central artifact push FILE)"
	if e, ok := errs.AsError(err); !ok || e.Field != "sha256" || err.Error() != want {
		t.Errorf("an image of an unknown artifact: %v, want %q", err, want)
	}
	err = d.DeleteArtifact("bob", digA)
	if !errors.Is(err, errs.ErrConflict) || !strings.Contains(err.Error(), "site s1 image i1 (sha256)") {
		t.Errorf("deleting a named artifact: %v, want a conflict naming site s1 image i1", err)
	}
	_, err = d.RegisterArtifact("bob", &Artifact{Digest: digB, Size: 50, Type: ArtifactOS, Source: ArtifactSource{URL: "http://other/b"}})
	if !errors.Is(err, errs.ErrConflict) || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "https://images.example.com/vmlinuz?…") {
		t.Errorf("registering a catalogued digest again: %v, want a conflict naming the URL without its query", err)
	}
}

// TestArtifactUses: the images that name each artifact, and what one
// site may pull.
func TestArtifactUses(t *testing.T) {
	d, _ := openTest(t)
	applyNext(t, d, artifactBase(t)...)
	applyNext(t, d,
		cmd(t, cmdCreateSite, &createSitePayload{Site: &Site{ID: "s2", CreatedAt: t0}}),
		cmd(t, cmdRecordArtifact, &recordArtifactPayload{Node: "c1", Artifact: uploaded(digC, 7), Create: true}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s2", Kind: KindImage, Key: "hook", Time: t0,
			Object: json.RawMessage(fmt.Sprintf(`{"name":"hook","type":"installer","kernel":"sha256:%s","initrd":"sha256:%s"}`, digB, digC))}),
		cmd(t, cmdPutDesired, &putDesiredPayload{Site: "s2", Kind: KindImage, Key: "web", Time: t0,
			Object: json.RawMessage(fmt.Sprintf(`{"name":"web","url":"http://x/web","sha256":%q}`, digA))}),
	)
	uses, err := d.ArtifactUses()
	if err != nil {
		t.Fatal(err)
	}
	want := map[artifact.Digest][]ArtifactUse{
		digA: {{Site: "s1", Image: "i1", Field: "sha256"}},
		digB: {{Site: "s2", Image: "hook", Field: "kernel"}},
		digC: {{Site: "s2", Image: "hook", Field: "initrd"}},
	}
	if diff := cmp.Diff(want, uses); diff != "" {
		t.Errorf("uses (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		site   string
		digest artifact.Digest
		want   bool
	}{{"s1", digA, true}, {"s1", digB, false}, {"s2", digA, false}, {"s2", digB, true}, {"s2", digC, true}} {
		if got, err := d.SiteUses(c.site, c.digest); got != c.want || err != nil {
			t.Errorf("SiteUses(%s, %s) = %v, %v; want %v", c.site, c.digest.Short(), got, err, c.want)
		}
	}
	if _, err := d.SiteUses("s9", digA); !errors.Is(err, errs.ErrNotFound) {
		t.Errorf("SiteUses of an unknown site: %v", err)
	}
}

// TestWatchArtifacts: a change of the catalogue closes the watch; a
// refused one does not.
func TestWatchArtifacts(t *testing.T) {
	d, _ := openTest(t)
	ch := d.WatchArtifacts()
	if _, err := d.RecordArtifact("c1", &Artifact{Digest: digA, Size: 1}, false); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("a copy of nothing: %v", err)
	}
	select {
	case <-ch:
		t.Fatal("a refused command woke the watchers")
	default:
	}
	if _, err := d.RecordArtifact("c1", uploaded(digA, 1), true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("a new record did not wake the watchers")
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://h/p/a.raw":              "https://h/p/a.raw",
		"https://u:pw@h/a?X-Amz-Sig=abc": "https://h/a?…",
		"http://h:8080/a#frag":           "http://h:8080/a",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
