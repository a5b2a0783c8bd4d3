package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// casImageName is the name central gives the test OS image when it is
// an artifact: its sha256 alone, which every node of the site keeps.
const casImageName = "testos-cas"

// pushed is an artifact an operator uploaded to central.
type pushed struct {
	digest string
	size   int64
}

// pushArtifact uploads file to central as an operator does, with the
// outpost CLI (`outpost --central URL artifact push`, which hashes the
// file, streams it with progress and prints its digest), and returns it.
// The token goes in a file, not on a command line a process list shows.
func pushArtifact(t *testing.T, cen *labsite.Central, file string) pushed {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "central.token")
	if err := os.WriteFile(tokenFile, []byte(cen.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--central", cen.URL, "--token-file", tokenFile}
	if cen.CAFile != "" {
		args = append(args, "--ca-file", cen.CAFile)
	}
	args = append(args, "artifact", "push", file, "--name", casImageName, "--type", "os")
	cmd := exec.CommandContext(t.Context(), outpostCLI(t), args...)
	// No context of the operator's (config file, OUTPOST_*) applies.
	cmd.Env = append(baseEnv(), "HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("outpost artifact push: %v\n%s", err, stderr.String())
	}
	t.Logf("outpost artifact push %s:\n%s", filepath.Base(file), lastLines(stderr.String(), 3))
	want := fileDigest(t, file)
	if got := strings.TrimSpace(stdout.String()); got != store.DigestPrefix+want {
		t.Fatalf("outpost artifact push printed %q, want %s%s", got, store.DigestPrefix, want)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return pushed{digest: want, size: fi.Size()}
}

// lastLines returns the last n lines of s (a progress bar rewrites one
// line with carriage returns: only its last state is kept).
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		if j := strings.LastIndex(l, "\r"); j >= 0 {
			lines[i] = l[j+1:]
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// fileDigest is the sha256 of file, in hexadecimal.
func fileDigest(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// putCASImage points the site's image casImageName at a, at central: an
// OS image that is its sha256 alone.
func putCASImage(t *testing.T, cen *labsite.Central, siteID string, a pushed) {
	t.Helper()
	img := map[string]any{"name": casImageName, "type": store.ImageOS, "format": "raw.gz", "sha256": a.digest}
	if err := cen.Do("PUT", "/v1/sites/"+siteID+"/images/"+casImageName, img, nil); err != nil {
		t.Fatal(err)
	}
}

// sentBytes is what central counts it sent siteID of its artifacts.
func sentBytes(t *testing.T, cen *labsite.Central, siteID string) int64 {
	t.Helper()
	var site struct {
		Artifacts struct {
			SentBytes int64 `json:"sent_bytes"`
		} `json:"artifacts"`
	}
	if err := cen.Do("GET", "/v1/sites/"+siteID, nil, &site); err != nil {
		t.Fatal(err)
	}
	return site.Artifacts.SentBytes
}

// artifactRecord reads the site's record of digest from n's GET
// /v1/artifacts, the list an operator reads.
func (s *syncedNetSite) artifactRecord(n *node, digest string) (artifacts.Record, error) {
	var list struct {
		Items []artifacts.Record `json:"items"`
	}
	if err := s.get(n, "/v1/artifacts", &list); err != nil {
		return artifacts.Record{}, err
	}
	for _, r := range list.Items {
		if r.SHA256 == digest {
			return r, nil
		}
	}
	return artifacts.Record{}, fmt.Errorf("%s: GET /v1/artifacts does not list %s", n.id, digest[:12])
}

// waitHeldBy waits up to timeout until the site's record of digest,
// read on from, names every node of holders as holding it, then checks
// that each holder's store has it with the right bytes.
func (s *syncedNetSite) waitHeldBy(t *testing.T, timeout time.Duration, from *node, digest string, holders ...*node) artifacts.Record {
	t.Helper()
	var rec artifacts.Record
	s.waitFor(timeout, "artifact "+digest[:12]+" on "+nodeIDs(holders), func() error {
		var err error
		if rec, err = s.artifactRecord(from, digest); err != nil {
			return err
		}
		for _, n := range holders {
			if !slices.Contains(rec.Nodes, n.id) {
				return fmt.Errorf("state %s, held by %v, not %s", rec.State, rec.Nodes, n.id)
			}
		}
		return nil
	})
	for _, n := range holders {
		if got := fileDigest(t, s.storedArtifact(n, digest)); got != digest {
			t.Errorf("%s's artifact %s hashes to %s", n.id, digest[:12], got)
		}
	}
	return rec
}

// storedArtifact is the path of digest in n's artifact store.
func (s *syncedNetSite) storedArtifact(n *node, digest string) string {
	return filepath.Join(n.dataDir, "artifacts", "sha256", digest)
}

// checkStoreSound checks that every file under n's artifact store's
// sha256/ hashes to its name: no node ever published bytes that are not
// the artifact they claim to be; and that no partial transfer of one is
// left beside it.
func (s *syncedNetSite) checkStoreSound(t *testing.T, n *node) {
	t.Helper()
	dir := filepath.Join(n.dataDir, "artifacts")
	entries, err := os.ReadDir(filepath.Join(dir, "sha256"))
	if err != nil {
		t.Fatalf("%s: %v", n.id, err)
	}
	for _, e := range entries {
		if got := fileDigest(t, filepath.Join(dir, "sha256", e.Name())); got != e.Name() {
			t.Errorf("%s's store holds %s whose bytes hash to %s", n.id, e.Name(), got)
		}
		if _, err := os.Stat(filepath.Join(dir, "partial", e.Name())); !os.IsNotExist(err) {
			t.Errorf("%s's store holds a partial transfer of %s beside it (%v)", n.id, e.Name()[:12], err)
		}
	}
}

// nodeIDs names nodes for messages.
func nodeIDs(nodes []*node) string {
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.id
	}
	return strings.Join(ids, ",")
}

// centralEventCount counts central's stored events of siteID of kind
// about digest (and node, if not "").
func centralEventCount(cen *labsite.Central, siteID, kind, digest, node string) int {
	n := 0
	for _, e := range cen.Events(siteID) {
		f := e.Data.Fields
		if e.Data.Kind == kind && f["sha256"] == digest && (node == "" || f["node"] == node) {
			n++
		}
	}
	return n
}
