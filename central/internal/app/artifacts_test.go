package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/internal/conf"
)

// randomBlob is n random bytes and their hex SHA-256.
func randomBlob(n int) ([]byte, string) {
	b := make([]byte, n)
	rand.Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

// holds reports whether the node of cfg has the artifact sum in its
// store, whole: its file hashes to its name.
func holds(cfg *config.Config, sum string) bool {
	f, err := os.Open(filepath.Join(cfg.ArtifactDir(), "sha256", sum))
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}

// threeNodes runs a replicated central of three nodes on loopback and
// returns their configurations and running nodes, and the admin token.
func threeNodes(t *testing.T, logs *centraltest.Buffer) ([]*config.Config, []*running, string) {
	t.Helper()
	c1 := nodeConfig(t, "c1")
	r1 := start(t, c1, logs)
	t.Cleanup(func() { r1.stop() })
	token := r1.waitAdminToken(t, c1)
	cfgs, runs := []*config.Config{c1}, []*running{r1}
	for _, id := range []string{"c2", "c3"} {
		c := nodeConfig(t, id)
		c.Join, c.JoinTokenFile = r1.url, c1.AdminTokenPath()
		r := start(t, c, logs)
		t.Cleanup(func() { r.stop() })
		cfgs, runs = append(cfgs, c), append(runs, r)
	}
	centraltest.WaitFor(t, "three voters that know their leader", func() bool {
		for _, r := range runs {
			st, err := client.New(r.url, token, nil).Cluster(t.Context())
			if err != nil || len(st.Voters) != 3 || st.Leader == "" {
				return false
			}
		}
		return true
	})
	return cfgs, runs, token
}

// leaderAndFollower are the indexes of the leader and of a follower.
func leaderAndFollower(t *testing.T, runs []*running, token string) (leader, follower int) {
	t.Helper()
	st, err := client.New(runs[0].url, token, nil).Cluster(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range runs {
		if fmt.Sprintf("c%d", i+1) == st.Leader {
			return i, (i + 1) % len(runs)
		}
	}
	t.Fatalf("leader %q is none of the nodes", st.Leader)
	return 0, 0
}

// waitEverywhere waits until every node holds sum, checked against the
// file's bytes, and central's record names all three.
func waitEverywhere(t *testing.T, cfgs []*config.Config, c *client.Client, sum string) {
	t.Helper()
	centraltest.WaitFor(t, "artifact "+sum[:12]+" on every node, recorded", func() bool {
		for _, cfg := range cfgs {
			if !holds(cfg, sum) {
				return false
			}
		}
		a, err := c.Artifact(t.Context(), sum)
		return err == nil && slices.Equal(a.Nodes, []string{"c1", "c2", "c3"}) && a.State == "present"
	})
}

// unavailable retries fn while it fails with 503 (an election under
// way, on a loaded machine), as a client does, and returns its last
// error.
func unavailable503(t *testing.T, fn func() error) error {
	t.Helper()
	var err error
	poll(func() bool {
		err = fn()
		var e *client.Error
		return !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable
	})
	return err
}

// In a central of three nodes, an artifact uploaded to the leader, and
// one uploaded to a follower, end up on every node (their bytes checked
// on disk); an upstream URL registered through a follower is fetched
// once, by the leader, and reaches every node; a site pulls an artifact
// through a follower, and the bytes it was sent are counted at the
// leader; /internal/ on the API's port is nobody's.
func TestArtifactsOnEveryNode(t *testing.T) {
	logs := &centraltest.Buffer{}
	cfgs, runs, token := threeNodes(t, logs)
	li, fi := leaderAndFollower(t, runs, token)
	leader, follower := client.New(runs[li].url, token, nil), client.New(runs[fi].url, token, nil)
	ctx := t.Context()

	a, sumA := randomBlob(3<<20 + 5)
	var got client.Artifact
	err := unavailable503(t, func() (err error) {
		got, err = leader.PushArtifact(ctx, bytes.NewReader(a), int64(len(a)), client.PushOptions{SHA256: sumA, Name: "a"})
		return err
	})
	if err != nil || got.SHA256 != sumA {
		t.Fatalf("push to the leader: %+v, %v", got, err)
	}
	waitEverywhere(t, cfgs, leader, sumA)

	b, sumB := randomBlob(2<<20 + 3)
	err = unavailable503(t, func() (err error) {
		got, err = follower.PushArtifact(ctx, bytes.NewReader(b), int64(len(b)), client.PushOptions{SHA256: sumB, Name: "b"})
		return err
	})
	if err != nil || got.SHA256 != sumB || !slices.Contains(got.Nodes, fmt.Sprintf("c%d", fi+1)) {
		t.Fatalf("push to follower c%d: %+v, %v", fi+1, got, err)
	}
	waitEverywhere(t, cfgs, leader, sumB)

	up, sumC := randomBlob(4<<20 + 1)
	var requests, served atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		n, _ := w.Write(up)
		served.Add(int64(n))
	}))
	defer upstream.Close()
	elections := strings.Count(logs.String(), "msg=leading")
	var reg client.Artifact
	err = unavailable503(t, func() (err error) {
		reg, err = follower.RegisterArtifact(ctx, client.RegisterArtifactRequest{URL: upstream.URL + "/c.raw?sig=secret", SHA256: sumC, Size: int64(len(up)), Name: "c", Type: "os"})
		return err
	})
	if err != nil || reg.Source.URL != upstream.URL+"/c.raw?…" {
		t.Fatalf("register through a follower: %+v, %v", reg, err)
	}
	waitEverywhere(t, cfgs, leader, sumC)
	// Each node that came to lead before a peer held it fetches it: the
	// leader alone, once, unless an election came in between (a loaded
	// machine).
	leaders := 1 + int64(strings.Count(logs.String(), "msg=leading")-elections)
	if requests.Load() < 1 || requests.Load() > leaders || served.Load() != requests.Load()*int64(len(up)) {
		t.Errorf("the upstream served %d requests, %d bytes; want one of %d (%d leaders since it was registered)",
			requests.Load(), served.Load(), len(up), leaders)
	}
	if leaders > 1 {
		t.Logf("%d elections while the URL was fetched: the upstream served %d requests", leaders-1, requests.Load())
	}
	if strings.Contains(logs.String(), "sig=secret") {
		t.Error("the registered URL's query is in the log")
	}

	sitePullThroughFollower(t, runs, li, fi, token, a, sumA)
	internalNotServed(t, runs[fi], token, sumC)
}

// sitePullThroughFollower: a site pulls an artifact through a follower;
// the bytes sent are counted at the leader.
func sitePullThroughFollower(t *testing.T, runs []*running, li, fi int, token string, a []byte, sum string) {
	t.Helper()
	leader := client.New(runs[li].url, token, nil)
	// A site made anew at each try: one whose creation answered 503 may
	// exist, its credential lost.
	var made client.SiteCreated
	try := 0
	if err := unavailable503(t, func() (err error) {
		try++
		made, err = leader.CreateSite(t.Context(), fmt.Sprintf("s%d", try), "one")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	site := made.Site.ID
	img := fmt.Sprintf(`{"name":"a","format":"raw","sha256":%q}`, sum)
	if err := unavailable503(t, func() error {
		_, err := leader.Put(t.Context(), site, "images", "a", []byte(img))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var body []byte
	centraltest.WaitFor(t, "the follower to serve the site its image", func() bool {
		req, _ := http.NewRequest("GET", runs[fi].url+"/v1/sites/"+site+"/artifacts/"+sum, nil)
		req.Header.Set("Authorization", "Bearer "+made.Credential)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ = io.ReadAll(res.Body)
		return res.StatusCode == http.StatusOK // 404 until the image reaches the follower
	})
	if !bytes.Equal(body, a) {
		t.Fatalf("the pull through the follower: %d bytes, want the artifact's %d", len(body), len(a))
	}
	centraltest.WaitFor(t, "the bytes sent to be counted at the leader", func() bool {
		s, err := leader.Site(t.Context(), site)
		return err == nil && s.Artifacts.SentBytes == int64(len(a))
	})
}

// internalNotServed: what a node serves its peers under /internal/ is
// not served on its API's port, nor sent on to the leader (whose Raft
// port would take it as the node's own call): nothing changes.
func internalNotServed(t *testing.T, r *running, token, sum string) {
	t.Helper()
	c := client.New(r.url, token, nil)
	var before, after client.Artifact
	if err := unavailable503(t, func() (err error) { before, err = c.Artifact(t.Context(), sum); return err }); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, token string }{
		{"GET", "/internal/artifacts/" + sum, ""},
		{"POST", "/internal/artifacts/" + sum + "/holder", token},
		{"DELETE", "/internal/artifacts/" + sum + "/holder", token},
		{"DELETE", "//internal/artifacts/" + sum + "/holder", token},
		{"POST", "/internal/artifacts/sent", token},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		req, _ := http.NewRequestWithContext(ctx, tc.method, r.url+tc.path, strings.NewReader(`{"artifact":{"sha256":"`+sum+`"}}`))
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusUnauthorized && res.StatusCode != http.StatusMovedPermanently {
			t.Errorf("%s %s on the API's port: %d, want 401 or 404", tc.method, tc.path, res.StatusCode)
		}
	}
	err := unavailable503(t, func() (err error) { after, err = c.Artifact(t.Context(), sum); return err })
	if err != nil || !slices.Equal(before.Nodes, after.Nodes) {
		t.Errorf("holders %v after the calls, want %v (%v)", after.Nodes, before.Nodes, err)
	}
}

// singleCentral runs a single central with cfg changed by change, and
// returns its URL, its admin token and its configuration.
func singleCentral(t *testing.T, change func(*config.Config)) (string, string, *config.Config) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.Addr = filepath.Join(t.TempDir(), "central"), "127.0.0.1:0"
	change(cfg)
	r := start(t, cfg, &centraltest.Buffer{})
	t.Cleanup(func() { r.stop() })
	return r.url, r.waitAdminToken(t, cfg), cfg
}

// trickle writes n pieces of size bytes of b into w, one every gap, and
// then closes it (with err, if not nil).
func trickle(w *io.PipeWriter, b []byte, size int, gap time.Duration, err error) {
	for len(b) > 0 {
		k := min(size, len(b))
		if _, werr := w.Write(b[:k]); werr != nil {
			return
		}
		b = b[k:]
		time.Sleep(gap)
	}
	w.CloseWithError(err)
}

// uploadStatus uploads body (size: its Content-Length; -1 chunked) and
// returns the answer's status.
func uploadStatus(t *testing.T, url, token string, body io.Reader, size int64) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/v1/artifacts", body)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0 // the server cut the connection
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// An upload is held to max_artifact_size (413, with or without a
// Content-Length, nothing kept) and may take far longer than the body
// deadline of other requests as long as it keeps coming; one that stalls
// is cut within the body deadline and keeps nothing.
func TestUploadLimits(t *testing.T) {
	url, token, cfg := singleCentral(t, func(c *config.Config) {
		c.MaxArtifactSize = 1 << 20
		c.Limits.BodyTimeout = conf.Duration(time.Second)
	})
	big, _ := randomBlob(1<<20 + 1)
	if code := uploadStatus(t, url, token, bytes.NewReader(big), int64(len(big))); code != http.StatusRequestEntityTooLarge {
		t.Errorf("an upload over the limit with its length: %d, want 413", code)
	}
	if code := uploadStatus(t, url, token, io.MultiReader(bytes.NewReader(big)), -1); code != http.StatusRequestEntityTooLarge && code != 0 {
		t.Errorf("a chunked upload over the limit: %d, want 413", code)
	}

	slow, sum := randomBlob(1 << 20)
	pr, pw := io.Pipe()
	go trickle(pw, slow, 80<<10, 150*time.Millisecond, nil) // 13 pieces: about 2 s, twice the body deadline
	start := time.Now()
	if code := uploadStatus(t, url, token, pr, -1); code != http.StatusCreated {
		t.Fatalf("a slow upload that keeps coming: %d, want 201", code)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the slow upload took %v: it tests nothing against a body deadline of 1s", took)
	}

	stalled, _ := randomBlob(300 << 10)
	pr, pw = io.Pipe()
	go func() {
		pw.Write(stalled[:100<<10])
		<-t.Context().Done() // and nothing more
		pw.Close()
	}()
	if code := uploadStatus(t, url, token, pr, int64(len(stalled))); code != http.StatusRequestTimeout && code != 0 {
		t.Errorf("a stalled upload: %d, want 408", code)
	}
	pw.Close()
	ents, _ := os.ReadDir(filepath.Join(cfg.ArtifactDir(), "sha256"))
	ups, _ := os.ReadDir(filepath.Join(cfg.ArtifactDir(), "upload"))
	if len(ents) != 1 || ents[0].Name() != sum || len(ups) != 0 {
		t.Errorf("the store holds %v and %d uploads, want only the slow upload's", ents, len(ups))
	}
}
