package httpboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/artifact"
)

// peerList is Peers over fixed sources.
type peerList []artifact.Source

func (p peerList) ArtifactPeers(artifact.Digest) []artifact.Source { return p }

// storeWith opens a store in a temporary directory holding data, and
// returns it with data's digest.
func storeWith(t *testing.T, data []byte) (*artifact.Store, artifact.Digest) {
	t.Helper()
	st, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if data == nil {
		return st, ""
	}
	info, err := st.Put(context.Background(), bytes.NewReader(data), "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return st, info.Digest
}

// peerServer serves a store as a peer's internal route does, and counts
// its requests.
func peerServer(t *testing.T, st *artifact.Store) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		d := artifact.Digest(strings.TrimPrefix(r.URL.Path, "/peer/"))
		if err := st.Serve(w, r, d); err != nil {
			http.Error(w, "not held here", http.StatusNotFound)
		}
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestServeDigest: this node's artifacts are served by digest, with
// Range and the digest as the ETag; one no node holds is a 404 saying
// so; a path that is no digest is a 404 too.
func TestServeDigest(t *testing.T) {
	parallel(t)
	data := randomBytes(300 << 10)
	st, d := storeWith(t, data)
	f := newFixture(t)
	f.serve(t, Config{Artifacts: st})
	a := &artifactServer{fixture: f, url: httptest.NewServer(f.handler).URL}

	res, body := a.request(t, "GET", "/artifacts/sha256/"+string(d))
	if res.StatusCode != 200 || !bytes.Equal(body, data) || res.Header.Get("ETag") != `"sha256-`+string(d)+`"` {
		t.Errorf("GET: %s, %d bytes, ETag %q", res.Status, len(body), res.Header.Get("ETag"))
	}
	res, body = a.request(t, "GET", "/artifacts/sha256/"+string(d), "Range", "bytes=1000-1999")
	if res.StatusCode != 206 || !bytes.Equal(body, data[1000:2000]) || res.Header.Get("Content-Range") != "bytes 1000-1999/307200" {
		t.Errorf("Range: %s, %d bytes, %q", res.Status, len(body), res.Header.Get("Content-Range"))
	}
	res, body = a.request(t, "HEAD", "/artifacts/sha256/"+string(d))
	if res.StatusCode != 200 || len(body) != 0 || res.ContentLength != int64(len(data)) {
		t.Errorf("HEAD: %s, %d bytes, length %d", res.Status, len(body), res.ContentLength)
	}
	missing := digestOf([]byte("nobody has this"))
	res, body = a.request(t, "GET", "/artifacts/sha256/"+missing)
	if res.StatusCode != 404 || !strings.Contains(string(body), "sha256:"+missing+" is not at the site") {
		t.Errorf("missing: %s %q", res.Status, body)
	}
	for _, p := range []string{strings.ToUpper(string(d)), string(d[:63]), "sha256:" + string(d), string(d) + "0"} {
		if res, _ := a.request(t, "GET", "/artifacts/sha256/"+p); res.StatusCode != 404 {
			t.Errorf("GET /artifacts/sha256/%s: %s, want 404", p, res.Status)
		}
	}
}

// TestServeDigestFromPeer: an artifact this node does not hold is
// streamed from a peer that does, Range and conditions passed on and the
// peer's headers passed back; a peer that does not hold it, or cannot be
// reached, is passed over.
func TestServeDigestFromPeer(t *testing.T) {
	parallel(t)
	data := randomBytes(1 << 20)
	holder, d := storeWith(t, data)
	empty, _ := storeWith(t, nil)
	withIt, hits := peerServer(t, holder)
	without, misses := peerServer(t, empty)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	local, _ := storeWith(t, nil)
	f := newFixture(t)
	f.serve(t, Config{Artifacts: local, Peers: peerList{
		{Name: "peer gone", URL: gone.URL + "/peer/" + string(d)},
		{Name: "peer without", URL: without.URL + "/peer/" + string(d)},
		{Name: "peer with", URL: withIt.URL + "/peer/" + string(d)},
	}})
	a := &artifactServer{fixture: f, url: httptest.NewServer(f.handler).URL}

	res, body := a.request(t, "GET", "/artifacts/sha256/"+string(d))
	if res.StatusCode != 200 || !bytes.Equal(body, data) || res.Header.Get("ETag") != `"sha256-`+string(d)+`"` ||
		res.Header.Get("X-Checksum-Sha256") != string(d) || res.ContentLength != int64(len(data)) {
		t.Errorf("proxied GET: %s, %d bytes, headers %v", res.Status, len(body), res.Header)
	}
	res, body = a.request(t, "GET", "/artifacts/sha256/"+string(d), "Range", "bytes=5000-", "If-Range", `"sha256-`+string(d)+`"`)
	if res.StatusCode != 206 || !bytes.Equal(body, data[5000:]) || res.Header.Get("Content-Range") != "bytes 5000-1048575/1048576" {
		t.Errorf("proxied Range: %s, %d bytes, %q", res.Status, len(body), res.Header.Get("Content-Range"))
	}
	res, _ = a.request(t, "GET", "/artifacts/sha256/"+string(d), "If-None-Match", `"sha256-`+string(d)+`"`)
	if res.StatusCode != 304 {
		t.Errorf("proxied If-None-Match: %s, want 304", res.Status)
	}
	if hits.Load() != 3 || misses.Load() != 3 {
		t.Errorf("the holder answered %d requests and the other peer %d, want 3 each", hits.Load(), misses.Load())
	}
	if _, ok := local.Stat(d); ok {
		t.Error("proxying stored the artifact: that is the replicator's, verified")
	}
}

// TestServeDigestPeerSilent: a peer that accepts the request and answers
// nothing is passed over after a while, and the next serves.
func TestServeDigestPeerSilent(t *testing.T) {
	parallel(t)
	data := randomBytes(64 << 10)
	holder, d := storeWith(t, data)
	withIt, _ := peerServer(t, holder)
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer silent.Close()
	defer close(release)
	f := newFixture(t)
	f.serve(t, Config{Peers: peerList{
		{Name: "peer silent", URL: silent.URL + "/peer/" + string(d)},
		{Name: "peer with", URL: withIt.URL + "/peer/" + string(d)},
	}})
	f.srv.peerAnswer = 200 * time.Millisecond
	a := &artifactServer{fixture: f, url: httptest.NewServer(f.handler).URL}
	res, body := a.request(t, "GET", "/artifacts/sha256/"+string(d))
	if res.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Errorf("with a silent peer first: %s, %d bytes", res.Status, len(body))
	}
}
