package cli_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cclient "github.com/outposthq/outpost/central/client"
	"github.com/outposthq/outpost/central/testcentral"
	"github.com/outposthq/outpost/internal/testwait"
)

// TestArtifactCommands: the artifact commands against a real central:
// push a file (its digest printed, its progress on stderr a line per 5
// percent, central holding exactly its bytes), list and get it, register
// an upstream URL that central fetches once, delete both.
func TestArtifactCommands(t *testing.T) {
	cen := testcentral.Start(t)
	data := make([]byte, 3<<20+11)
	rand.Read(data)
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	file := filepath.Join(t.TempDir(), "debian-12.raw")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}

	r := centralRun(t, cen, "", "artifact", "push", file, "--name", "debian-12", "--type", "os")
	if out := mustOK(t, r); out != "sha256:"+digest+"\n" {
		t.Errorf("push printed %q, want the digest", out)
	}
	lines := regexp.MustCompile(`(?m)^push: +(\d+)% [^\n]* of 3\.0MiB, [\d.]+ MiB/s$`).FindAllStringSubmatch(r.stderr, -1)
	if len(lines) == 0 || lines[len(lines)-1][1] != "100" || !strings.Contains(r.stderr, "sha256: 100%") || strings.Contains(r.stderr, "\r") {
		t.Errorf("push's progress on stderr (not a terminal): %q; want lines up to 100%% for the hash and the upload", r.stderr)
	}
	for i := 1; i < len(lines); i++ {
		prev, _ := strconv.Atoi(lines[i-1][1])
		cur, _ := strconv.Atoi(lines[i][1])
		if cur/5 <= prev/5 {
			t.Errorf("progress lines %q then %q: want one per 5%% passed", lines[i-1][0], lines[i][0])
		}
	}
	c := cclient.New(cen.URL, cen.Token, nil)
	rc, err := c.ArtifactContent(t.Context(), digest, 0)
	if err != nil {
		t.Fatal(err)
	}
	held, err := io.ReadAll(rc)
	rc.Close()
	if heldSum := sha256.Sum256(held); err != nil || heldSum != sum {
		t.Errorf("central holds other bytes than the file's (%v)", err)
	}

	rows := table(mustOK(t, centralRun(t, cen, "", "artifact", "list")))
	if len(rows) != 2 || rows[1][0] != digest[:12] || rows[1][1] != "debian-12" || rows[1][2] != "os" || rows[1][3] != "3.0MiB" || rows[1][4] != "present" {
		t.Errorf("artifact list: %q", rows)
	}
	var got cclient.Artifact
	if err := json.Unmarshal([]byte(mustOK(t, centralRun(t, cen, "", "artifact", "get", "sha256:"+digest, "-o", "json"))), &got); err != nil ||
		got.Size != int64(len(data)) || got.Name != "debian-12" {
		t.Errorf("artifact get -o json: %+v, %v", got, err)
	}

	up := []byte("an upstream artifact")
	upSum := sha256.Sum256(up)
	var requests atomic.Int64
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write(up)
	}))
	defer upstream.Close()
	upDigest := hex.EncodeToString(upSum[:])
	out := mustOK(t, centralRun(t, cen, "", "artifact", "register", upstream.URL+"/x", "--sha256", "sha256:"+upDigest, "--size", strconv.Itoa(len(up)), "--name", "up"))
	if out != "sha256:"+upDigest+"\n" {
		t.Errorf("register printed %q", out)
	}
	testwait.For(t, "the registered URL present at central", 20*time.Second, func() bool {
		a, err := c.Artifact(t.Context(), upDigest)
		return err == nil && a.State == "present"
	})
	if requests.Load() != 1 {
		t.Errorf("the upstream was asked %d times, want once", requests.Load())
	}
	for _, d := range []string{digest, upDigest} {
		if out := mustOK(t, centralRun(t, cen, "", "artifact", "delete", d)); out != "artifact "+d+" deleted\n" {
			t.Errorf("delete printed %q", out)
		}
	}
	if rows := table(mustOK(t, centralRun(t, cen, "", "artifact", "list"))); len(rows) != 1 {
		t.Errorf("artifact list after the deletes: %q", rows)
	}
}

// TestArtifactRefusals: the artifact commands say what is wrong, and a
// bad command changes nothing.
func TestArtifactRefusals(t *testing.T) {
	cen := testcentral.Start(t)
	for name, tc := range map[string]struct {
		args   []string
		code   int
		stderr string
	}{
		"at a site":      {[]string{"--server", "http://127.0.0.1:1", "artifact", "list"}, 1, "artifacts are published at central: use --central"},
		"no file":        {[]string{"--central", cen.URL, "--token", cen.Token, "artifact", "push", "/nonexistent/x.raw"}, 1, "no such file"},
		"a directory":    {[]string{"--central", cen.URL, "--token", cen.Token, "artifact", "push", t.TempDir()}, 1, "is not a regular file"},
		"no sha256":      {[]string{"--central", cen.URL, "--token", cen.Token, "artifact", "register", "http://x/y", "--size", "5"}, 2, "--sha256 and --size are required"},
		"a bad size":     {[]string{"--central", cen.URL, "--token", cen.Token, "artifact", "register", "http://x/y", "--sha256", strings.Repeat("a", 64), "--size", "five"}, 2, "--size \"five\""},
		"a bad type":     {[]string{"--central", cen.URL, "--token", cen.Token, "artifact", "push", writeTemp(t, "x"), "--type", "iso"}, 1, "type: \"iso\" is not one of os, kernel, initrd, file"},
		"unknown digest": {[]string{"--central", cen.URL, "--token", cen.Token, "artifact", "get", strings.Repeat("c", 64)}, 1, "HTTP 404"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, "", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("exit %d, %q; want %d and %q", r.code, r.stderr, tc.code, tc.stderr)
			}
		})
	}
	if list, err := cclient.New(cen.URL, cen.Token, nil).Artifacts(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("artifacts after the refusals: %+v, %v", list, err)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
