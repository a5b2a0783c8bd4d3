package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/artifacts"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/backoff"
)

// blob is random bytes and their digest.
func blob(t *testing.T, n int) ([]byte, string) {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// send sends a request with header pairs and returns its status and body.
func (e *env) send(method, path string, body io.Reader, header ...string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, raw
}

// upload uploads b with the admin token and the query q and returns the
// status and the answer.
func (e *env) upload(b []byte, q string) (int, client.Artifact, apiError) {
	e.t.Helper()
	code, raw := e.send("POST", "/v1/artifacts?"+q, bytes.NewReader(b), "Authorization", "Bearer "+e.token)
	var a client.Artifact
	var ae apiError
	json.Unmarshal(raw, &a)
	json.Unmarshal(raw, &ae)
	return code, a, ae
}

// held lists the digests this node's store holds, and the files left in
// its upload directory.
func (e *env) held() (digests []string, uploads int) {
	e.t.Helper()
	list, err := e.arts.Store().List()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, i := range list {
		digests = append(digests, string(i.Digest))
	}
	ents, _ := os.ReadDir(filepath.Join(e.arts.Store().Dir(), "upload"))
	return digests, len(ents)
}

// metric is the value of the metric name with the label pairs given
// (-1: none).
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestArtifactUpload: an upload checked against its sha256 is stored and
// recorded with its metadata and who uploaded it; one whose bytes hash
// otherwise is refused naming sha256 and keeps nothing; bad metadata is
// refused before a byte is stored; the catalogue lists it and serves its
// bytes with Range.
func TestArtifactUpload(t *testing.T) {
	e := newEnv(t)
	b, sum := blob(t, 3<<20+17)
	code, a, ae := e.upload(b, "sha256=sha256:"+sum+"&name=debian-12&type=os&description=Debian+12")
	if code != http.StatusCreated {
		t.Fatalf("upload: %d %+v", code, ae)
	}
	if a.SHA256 != sum || a.Size != int64(len(b)) || a.Name != "debian-12" || a.Type != "os" || a.Description != "Debian 12" ||
		a.State != "present" || a.CreatedBy != "admin" || a.Source.Upload != "admin" || strings.Join(a.Nodes, ",") != "central" {
		t.Errorf("uploaded: %+v", a)
	}
	if got, uploads := e.held(); strings.Join(got, ",") != sum || uploads != 0 {
		t.Fatalf("the store holds %v (%d uploads left), want %s", got, uploads, sum)
	}

	other, otherSum := blob(t, 1000)
	refusals := map[string]struct {
		body  []byte
		query string
		field string
		code  int
	}{
		"another digest": {other, "sha256=" + sum, "sha256", http.StatusBadRequest},
		"not a digest":   {other, "sha256=abc", "sha256", http.StatusBadRequest},
		"a bad type":     {other, "type=iso", "type", http.StatusBadRequest},
		"a long name":    {other, "name=" + strings.Repeat("n", 201), "name", http.StatusBadRequest},
		"no body":        {nil, "", "body", http.StatusBadRequest},
	}
	for name, tc := range refusals {
		t.Run(name, func(t *testing.T) {
			code, _, ae := e.upload(tc.body, tc.query)
			if code != tc.code || ae.Error.Field != tc.field {
				t.Errorf("%d %+v, want %d naming %s", code, ae.Error, tc.code, tc.field)
			}
		})
	}
	_, _, ae = e.upload(other, "sha256="+sum)
	if want := "the 1000 bytes uploaded hash to sha256:" + otherSum + ", not sha256:" + sum + ": nothing was stored"; ae.Error.Message != want {
		t.Errorf("mismatch: %q, want %q", ae.Error.Message, want)
	}
	if got, uploads := e.held(); strings.Join(got, ",") != sum || uploads != 0 {
		t.Errorf("after the refusals the store holds %v (%d uploads left), want only %s", got, uploads, sum)
	}
	if all, _ := e.db.Artifacts(); len(all) != 1 {
		t.Errorf("%d artifacts recorded after the refusals, want 1", len(all))
	}

	var list struct{ Artifacts []client.Artifact }
	if code := e.do("GET", "/v1/artifacts", "", &list); code != 200 || len(list.Artifacts) != 1 || list.Artifacts[0].SHA256 != sum {
		t.Errorf("list: %d %+v", code, list)
	}
	var one client.Artifact
	if code := e.do("GET", "/v1/artifacts/sha256:"+sum, "", &one); code != 200 || one.Name != "debian-12" {
		t.Errorf("get: %d %+v", code, one)
	}
	if code := e.do("GET", "/v1/artifacts/"+otherSum, "", nil); code != http.StatusNotFound {
		t.Errorf("get of an unknown artifact: %d", code)
	}
	code, raw := e.send("GET", "/v1/artifacts/"+sum+"/content", nil, "Authorization", "Bearer "+e.token, "Range", "bytes=1000-")
	if code != http.StatusPartialContent || !bytes.Equal(raw, b[1000:]) {
		t.Errorf("content from byte 1000: %d, %d bytes", code, len(raw))
	}
}

// TestSitePullsArtifact: a site pulls, with its credential, an artifact
// its images name, whole or from a byte on; a wrong credential and an
// unknown site get the same 401; an artifact its images do not name is
// 404 whether central holds it or not; the bytes written are counted
// for the site (the site, the artifact, the metric).
func TestSitePullsArtifact(t *testing.T) {
	e := newEnv(t)
	cred := e.createSite("s1")
	b, sum := blob(t, 2<<20)
	if code, _, ae := e.upload(b, "sha256="+sum); code != http.StatusCreated {
		t.Fatalf("upload: %d %+v", code, ae)
	}
	notNamed, notNamedSum := blob(t, 100)
	if code, _, ae := e.upload(notNamed, ""); code != http.StatusCreated {
		t.Fatalf("upload: %d %+v", code, ae)
	}
	if code := e.do("PUT", "/v1/sites/s1/images/debian-12", fmt.Sprintf(`{"name":"debian-12","format":"raw","sha256":%q}`, sum), nil); code != 200 {
		t.Fatalf("put image: %d", code)
	}
	pull := func(site, credential, digest string, header ...string) (int, []byte) {
		return e.send("GET", "/v1/sites/"+site+"/artifacts/"+digest, nil, append([]string{"Authorization", "Bearer " + credential}, header...)...)
	}
	if code, raw := pull("s1", cred, sum); code != 200 || !bytes.Equal(raw, b) {
		t.Fatalf("pull: %d, %d bytes", code, len(raw))
	}
	if code, raw := pull("s1", cred, "sha256:"+sum, "Range", "bytes=1048576-"); code != http.StatusPartialContent || !bytes.Equal(raw, b[1<<20:]) {
		t.Fatalf("pull from 1 MiB: %d, %d bytes", code, len(raw))
	}
	sent := int64(len(b) + len(b) - 1<<20)

	wrong, wrongBody := pull("s1", cred+"x", sum)
	unknown, unknownBody := pull("s9", cred, sum)
	token, _ := pull("s1", e.token, sum)
	if wrong != 401 || unknown != 401 || token != 401 || string(wrongBody) != string(unknownBody) {
		t.Errorf("a wrong credential %d %s, an unknown site %d %s, an API token %d: want the same 401", wrong, wrongBody, unknown, unknownBody, token)
	}
	_, missingSum := blob(t, 10)
	held, heldBody := pull("s1", cred, notNamedSum)
	missing, missingBody := pull("s1", cred, missingSum)
	if held != 404 || missing != 404 || strings.ReplaceAll(string(heldBody), notNamedSum, "X") != strings.ReplaceAll(string(missingBody), missingSum, "X") {
		t.Errorf("an artifact held but not named: %d %s; one not held: %d %s; want the same 404", held, heldBody, missing, missingBody)
	}

	// An artifact central has catalogued but this node does not hold yet:
	// 503, retry.
	_, fetching := blob(t, 64)
	if _, err := e.db.RegisterArtifact("bob", &store.Artifact{Digest: artifact.Digest(fetching), Size: 64,
		Source: store.ArtifactSource{URL: "http://127.0.0.1:1/never"}}); err != nil {
		t.Fatal(err)
	}
	e.do("PUT", "/v1/sites/s1/images/later", fmt.Sprintf(`{"name":"later","format":"raw","sha256":%q}`, fetching), nil)
	for what, path := range map[string]string{"pull": "/v1/sites/s1/artifacts/" + fetching, "content": "/v1/artifacts/" + fetching + "/content"} {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+map[string]string{"pull": cred, "content": e.token}[what])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s of an artifact not held yet: %d, Retry-After %q; want 503 with Retry-After", what, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}

	var site client.Site
	centraltest.WaitFor(t, "the bytes sent to be stored", func() bool {
		e.do("GET", "/v1/sites/s1", "", &site)
		return site.Artifacts.SentBytes == sent
	})
	var a client.Artifact
	e.do("GET", "/v1/artifacts/"+sum, "", &a)
	if len(a.Sites) != 1 || a.Sites[0].Site != "s1" || a.Sites[0].SentBytes != sent || strings.Join(a.Sites[0].Images, ",") != "debian-12" {
		t.Errorf("the artifact's sites: %+v, want s1's image debian-12 and %d bytes sent", a.Sites, sent)
	}
	if got := e.metric("outpost_central_artifact_sent_bytes_total", "site", "s1"); got != float64(sent) {
		t.Errorf("outpost_central_artifact_sent_bytes_total{site=s1} %v, want %d", got, sent)
	}
	for what, secret := range map[string]string{"credential": cred, "token": e.token} {
		if strings.Contains(e.logs.String(), secret) {
			t.Errorf("the %s is in the log", what)
		}
	}
}

// TestImagesNameArtifacts: a site's image that is content-addressed
// must name artifacts central holds (400 naming the field otherwise);
// one with a URL is passed as before. An artifact an image names cannot
// be deleted (409 naming the site and image); once no image does, it is
// deleted, and removed from the node's store.
func TestImagesNameArtifacts(t *testing.T) {
	e := newEnv(t)
	e.createSite("s1")
	b, sum := blob(t, 4096)
	_, unknown := blob(t, 10)
	if code, _, ae := e.upload(b, "sha256="+sum+"&type=kernel"); code != http.StatusCreated {
		t.Fatalf("upload: %d %+v", code, ae)
	}
	puts := map[string]struct {
		body  string
		code  int
		field string
	}{
		"unknown-sha256":   {fmt.Sprintf(`{"name":"NAME","format":"raw","sha256":%q}`, unknown), 400, "sha256"},
		"unknown-initrd":   {fmt.Sprintf(`{"name":"NAME","type":"installer","kernel":"sha256:%s","initrd":"sha256:%s"}`, sum, unknown), 400, "initrd"},
		"unknown-upper":    {fmt.Sprintf(`{"name":"NAME","format":"raw","sha256":%q}`, strings.ToUpper(unknown)), 400, "sha256"},
		"with-url":         {fmt.Sprintf(`{"name":"NAME","url":"http://x/i","format":"raw","sha256":%q}`, unknown), 200, ""},
		"held-kernel":      {fmt.Sprintf(`{"name":"NAME","type":"installer","kernel":"sha256:%s","initrd":"http://x/initrd"}`, sum), 200, ""},
		"held-os-image":    {fmt.Sprintf(`{"name":"NAME","format":"raw","sha256":%q}`, sum), 200, ""},
		"installer-by-url": {`{"name":"NAME","type":"installer","kernel":"http://x/k","initrd":"http://x/i"}`, 200, ""},
	}
	for name, tc := range puts {
		t.Run(name, func(t *testing.T) {
			var ae apiError
			code := e.do("PUT", "/v1/sites/s1/images/"+name, strings.ReplaceAll(tc.body, "NAME", name), &ae)
			if code != tc.code || ae.Error.Field != tc.field {
				t.Errorf("%d %+v, want %d naming %q", code, ae.Error, tc.code, tc.field)
			}
			if tc.code == 400 && !strings.Contains(ae.Error.Message, "is not an artifact central holds: upload it first (outpost --central artifact push FILE)") {
				t.Errorf("message %q", ae.Error.Message)
			}
		})
	}
	// An OS image given without its size carries the artifact's, so the
	// site can say how large an image an order waits for.
	var got struct {
		Size uint64 `json:"size_bytes"`
	}
	if code := e.do("GET", "/v1/sites/s1/images/held-os-image", "", &got); code != 200 || got.Size != 4096 {
		t.Errorf("held-os-image: %d, size_bytes %d, want 4096 from the catalogue", code, got.Size)
	}
	var ae apiError
	if code := e.do("DELETE", "/v1/artifacts/"+sum, "", &ae); code != http.StatusConflict ||
		!strings.Contains(ae.Error.Message, "site s1 image held-kernel (kernel)") || !strings.Contains(ae.Error.Message, "site s1 image held-os-image (sha256)") {
		t.Fatalf("delete while named: %d %+v", code, ae.Error)
	}
	for _, img := range []string{"held-kernel", "held-os-image"} {
		if code := e.do("DELETE", "/v1/sites/s1/images/"+img, "", nil); code != 200 {
			t.Fatalf("delete image %s: %d", img, code)
		}
	}
	if code := e.do("DELETE", "/v1/artifacts/"+sum, "", &ae); code != 200 {
		t.Fatalf("delete: %d %+v", code, ae.Error)
	}
	if code := e.do("GET", "/v1/artifacts/"+sum, "", nil); code != http.StatusNotFound {
		t.Errorf("get after the delete: %d", code)
	}
	centraltest.WaitFor(t, "the node to remove its copy", func() bool {
		_, ok := e.arts.Store().Stat(artifact.Digest(sum))
		return !ok
	})
}

// TestArtifactMetrics: /metrics shows the node's artifacts by state and
// the bytes it holds.
func TestArtifactMetrics(t *testing.T) {
	e := newEnv(t)
	b, sum := blob(t, 5000)
	e.upload(b, "sha256="+sum)
	if _, err := e.db.RegisterArtifact("bob", &store.Artifact{Digest: artifact.Digest(strings.Repeat("ab", 32)), Size: 10,
		Source: store.ArtifactSource{URL: "http://127.0.0.1:1/nothing"}}); err != nil {
		t.Fatal(err)
	}
	code, raw := e.send("GET", "/metrics", nil)
	for _, want := range []string{`outpost_central_artifacts{state="present"} 1`, `outpost_central_artifact_bytes 5000`, `outpost_central_artifact_corrupt_total 0`} {
		if code != 200 || !strings.Contains(string(raw), want) {
			t.Errorf("/metrics %d lacks %q", code, want)
		}
	}
	if !strings.Contains(string(raw), `outpost_central_artifacts{state="missing"} 1`) && !strings.Contains(string(raw), `outpost_central_artifacts{state="fetching"} 1`) {
		t.Errorf("/metrics does not count the registered artifact no node holds:\n%s", raw)
	}
}

// TestUpstreamCorrupt: an upstream URL that serves other bytes than its
// registered digest is fetched three times, each thrown away (counted),
// then no more; the artifact says why no node holds it, and nothing
// corrupt is kept.
func TestUpstreamCorrupt(t *testing.T) {
	e := newEnvWith(t, func(c *artifacts.Config) {
		c.Retry = backoff.Exponential{Base: time.Millisecond, Max: 10 * time.Millisecond}
	})
	var requests atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte("not what was registered"))
	}))
	defer upstream.Close()
	_, sum := blob(t, 23)
	body := fmt.Sprintf(`{"url":%q,"sha256":%q,"size_bytes":23,"name":"bad"}`, upstream.URL+"/bad", sum)
	var a client.Artifact
	if code := e.do("POST", "/v1/artifacts/register", body, &a); code != http.StatusAccepted || a.State != "fetching" {
		t.Fatalf("register: %d %+v", code, a)
	}
	centraltest.WaitFor(t, "central to give the URL up", func() bool {
		e.do("GET", "/v1/artifacts/"+sum, "", &a)
		return a.Error != ""
	})
	if requests.Load() != 3 || e.metric("outpost_central_artifact_corrupt_total") != 3 || !strings.Contains(a.Error, "no longer fetches it") {
		t.Errorf("%d requests, %v corrupt transfers, error %q; want 3, 3 and why", requests.Load(), e.metric("outpost_central_artifact_corrupt_total"), a.Error)
	}
	if got, uploads := e.held(); len(got) != 0 || uploads != 0 {
		t.Errorf("the store holds %v after corrupt transfers", got)
	}
}
