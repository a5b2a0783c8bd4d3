package httpboot

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
)

// artifactServer is a fixture with files in ArtifactDir, served on a real
// loopback socket.
type artifactServer struct {
	*fixture
	url string
}

func newArtifactServer(t *testing.T) *artifactServer {
	t.Helper()
	f := newFixture(t)
	ts := httptest.NewServer(f.handler)
	t.Cleanup(ts.Close)
	return &artifactServer{fixture: f, url: ts.URL}
}

// write creates name under ArtifactDir with data and returns data.
func (a *artifactServer) write(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	p := filepath.Join(a.artifacts, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}

// request sends method to path with the given headers and returns the
// response and its body.
func (a *artifactServer) request(t *testing.T, method, path string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestArtifactGet(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	data := a.write(t, "installer/vmlinuz", randomBytes(1<<20+123))
	res, body := a.request(t, "GET", "/artifacts/installer/vmlinuz")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if !bytes.Equal(body, data) {
		t.Fatalf("body differs from the file: %d bytes, want %d", len(body), len(data))
	}
	fi, err := os.Stat(filepath.Join(a.artifacts, "installer/vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range []string{"Content-Length", "Content-Type", "ETag", "Last-Modified", "Accept-Ranges", "Cache-Control", "Digest"} {
		got[k] = res.Header.Get(k)
	}
	want := map[string]string{
		"Content-Length": fmt.Sprint(len(data)),
		"Content-Type":   "application/octet-stream",
		"ETag":           fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()),
		"Last-Modified":  fi.ModTime().UTC().Format(http.TimeFormat),
		"Accept-Ranges":  "bytes",
		"Cache-Control":  "no-cache",
		"Digest":         "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
}

func TestArtifactHead(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	data := a.write(t, "ipxe.efi", randomBytes(4097))
	res, body := a.request(t, "HEAD", "/artifacts/ipxe.efi")
	if res.StatusCode != http.StatusOK || len(body) != 0 {
		t.Fatalf("HEAD = %d with %d body bytes, want 200 and none", res.StatusCode, len(body))
	}
	if got := res.Header.Get("Content-Length"); got != fmt.Sprint(len(data)) {
		t.Errorf("Content-Length = %q, want %d", got, len(data))
	}
	if res.Header.Get("ETag") == "" {
		t.Error("HEAD has no ETag")
	}
}

func TestArtifactRange(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	data := a.write(t, "os.raw.gz", randomBytes(100_000))
	n := len(data)
	tests := map[string]struct {
		rng        string
		wantStatus int
		wantBody   []byte
		wantRange  string
	}{
		"first byte":       {"bytes=0-0", 206, data[:1], fmt.Sprintf("bytes 0-0/%d", n)},
		"middle":           {"bytes=1000-1999", 206, data[1000:2000], fmt.Sprintf("bytes 1000-1999/%d", n)},
		"open ended":       {"bytes=99000-", 206, data[99000:], fmt.Sprintf("bytes 99000-%d/%d", n-1, n)},
		"suffix":           {"bytes=-500", 206, data[n-500:], fmt.Sprintf("bytes %d-%d/%d", n-500, n-1, n)},
		"past the end":     {"bytes=99990-200000", 206, data[99990:], fmt.Sprintf("bytes 99990-%d/%d", n-1, n)},
		"unsatisfiable":    {"bytes=200000-", 416, nil, fmt.Sprintf("bytes */%d", n)},
		"not bytes":        {"lines=1-2", 416, nil, ""}, // net/http refuses other units
		"whole as a range": {"bytes=0-", 206, data, fmt.Sprintf("bytes 0-%d/%d", n-1, n)},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res, body := a.request(t, "GET", "/artifacts/os.raw.gz", "Range", tt.rng)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("Range %s: status %d, want %d", tt.rng, res.StatusCode, tt.wantStatus)
			}
			if got := res.Header.Get("Content-Range"); got != tt.wantRange {
				t.Errorf("Content-Range = %q, want %q", got, tt.wantRange)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("Range %s: %d bytes that differ from the file's, want %d", tt.rng, len(body), len(tt.wantBody))
			}
		})
	}
}

func TestArtifactMultiRange(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	data := a.write(t, "os.raw", randomBytes(10_000))
	res, body := a.request(t, "GET", "/artifacts/os.raw", "Range", "bytes=0-9,5000-5099,-10")
	if res.StatusCode != http.StatusPartialContent {
		t.Fatalf("status %d, want 206", res.StatusCode)
	}
	mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type %q, want multipart/byteranges", res.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	want := []struct {
		rng  string
		data []byte
	}{
		{"bytes 0-9/10000", data[0:10]},
		{"bytes 5000-5099/10000", data[5000:5100]},
		{"bytes 9990-9999/10000", data[9990:]},
	}
	for i, w := range want {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got, _ := io.ReadAll(p)
		if p.Header.Get("Content-Range") != w.rng || !bytes.Equal(got, w.data) {
			t.Errorf("part %d: %q with %d bytes, want %q with the file's bytes", i, p.Header.Get("Content-Range"), len(got), w.rng)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after the last part: %v, want EOF", err)
	}
}

func TestArtifactConditional(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	data := a.write(t, "initrd.gz", randomBytes(5000))
	res, _ := a.request(t, "GET", "/artifacts/initrd.gz")
	etag, lastMod := res.Header.Get("ETag"), res.Header.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q is not a strong ETag", etag)
	}
	tests := map[string]struct {
		hdr        []string
		wantStatus int
		wantBody   []byte
	}{
		"if-none-match same":  {[]string{"If-None-Match", etag}, 304, nil},
		"if-none-match list":  {[]string{"If-None-Match", `"x", ` + etag}, 304, nil},
		"if-none-match star":  {[]string{"If-None-Match", "*"}, 304, nil},
		"if-none-match other": {[]string{"If-None-Match", `"other"`}, 200, data},
		"if-modified-since":   {[]string{"If-Modified-Since", lastMod}, 304, nil},
		"if-range same etag":  {[]string{"Range", "bytes=10-19", "If-Range", etag}, 206, data[10:20]},
		"if-range other etag": {[]string{"Range", "bytes=10-19", "If-Range", `"other"`}, 200, data},
		"if-range same date":  {[]string{"Range", "bytes=10-19", "If-Range", lastMod}, 206, data[10:20]},
		"if-range older date": {[]string{"Range", "bytes=10-19", "If-Range", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200, data},
		"if-match other etag": {[]string{"If-Match", `"other"`}, 412, nil},
		"if-match same etag":  {[]string{"If-Match", etag}, 200, data},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			res, body := a.request(t, "GET", "/artifacts/initrd.gz", tt.hdr...)
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("%v: status %d, want %d", tt.hdr, res.StatusCode, tt.wantStatus)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Errorf("%v: body of %d bytes differs, want %d", tt.hdr, len(body), len(tt.wantBody))
			}
			if res.StatusCode == 304 && len(body) != 0 {
				t.Errorf("304 with a body of %d bytes", len(body))
			}
		})
	}
}

// TestArtifactETagChanges checks that replacing a file changes its ETag,
// so a client holding the old one gets the new content.
func TestArtifactETagChanges(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	a.write(t, "k", []byte("old kernel"))
	res, _ := a.request(t, "GET", "/artifacts/k")
	old := res.Header.Get("ETag")
	p := filepath.Join(a.artifacts, "k")
	a.write(t, "k", []byte("new kernel"))
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	res, body := a.request(t, "GET", "/artifacts/k", "If-None-Match", old)
	if res.StatusCode != 200 || string(body) != "new kernel" || res.Header.Get("ETag") == old {
		t.Errorf("after replacing: %d %q ETag %s, want 200 \"new kernel\" with a new ETag than %s",
			res.StatusCode, body, res.Header.Get("ETag"), old)
	}
}

func TestArtifactSidecar(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	data := a.write(t, "debian.raw.gz", randomBytes(3000))
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	tests := map[string]struct {
		sidecar  string
		age      time.Duration // sidecar mtime relative to the file's
		wantETag string        // "" means the size+mtime one
	}{
		"sha256sum format": {hexSum + "  debian.raw.gz\n", 0, `"sha256-` + hexSum + `"`},
		"bare digest":      {hexSum, time.Second, `"sha256-` + hexSum + `"`},
		"upper case":       {strings.ToUpper(hexSum) + "\n", 0, `"sha256-` + hexSum + `"`},
		"stale":            {hexSum, -time.Hour, ""},
		"malformed":        {"not a digest", 0, ""},
		"short":            {hexSum[:60], 0, ""},
		"empty":            {"", 0, ""},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(a.artifacts, "debian.raw.gz")
			side := file + ".sha256"
			a.write(t, "debian.raw.gz.sha256", []byte(tt.sidecar))
			fi, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(side, fi.ModTime(), fi.ModTime().Add(tt.age)); err != nil {
				t.Fatal(err)
			}
			res, body := a.request(t, "GET", "/artifacts/debian.raw.gz")
			if !bytes.Equal(body, data) {
				t.Fatal("body differs from the file")
			}
			wantETag, wantDigest, wantHex := tt.wantETag, "SHA-256="+base64.StdEncoding.EncodeToString(sum[:]), hexSum
			if wantETag == "" {
				wantETag, wantDigest, wantHex = fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()), "", ""
			}
			got := []string{res.Header.Get("ETag"), res.Header.Get("Digest"), res.Header.Get("X-Checksum-Sha256")}
			if diff := cmp.Diff([]string{wantETag, wantDigest, wantHex}, got); diff != "" {
				t.Errorf("ETag, Digest, X-Checksum-Sha256 (-want +got):\n%s", diff)
			}
			if tt.wantETag != "" {
				res, _ := a.request(t, "GET", "/artifacts/debian.raw.gz", "If-None-Match", tt.wantETag)
				if res.StatusCode != 304 {
					t.Errorf("If-None-Match with the sha256 ETag: %d, want 304", res.StatusCode)
				}
			}
		})
	}
}

// rawGet sends target as it is on the request line, so that neither
// client nor test can clean it first, and returns the status and body.
func rawGet(t *testing.T, serverURL, target string) (int, string) {
	t.Helper()
	addr := strings.TrimPrefix(serverURL, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// escapeFixture adds, under ArtifactDir, a regular file, a directory, a
// symlink inside it and symlinks, a FIFO and a hard-to-name file that must
// not be served.
func escapeFixture(t testing.TB, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "inside"), []byte("inside"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644))
	must(os.Symlink("sub/inside", filepath.Join(dir, "link-inside")))
	must(os.Symlink("../secret", filepath.Join(dir, "escape")))
	must(os.Symlink(filepath.Join(filepath.Dir(dir), "secret"), filepath.Join(dir, "escape-abs")))
	must(os.Symlink("..", filepath.Join(dir, "escape-dir")))
	must(os.Symlink("/", filepath.Join(dir, "escape-root")))
	must(os.Symlink("sub/../../secret", filepath.Join(dir, "sub", "escape-deep")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
}

func TestArtifactTraversal(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	escapeFixture(t, a.artifacts)
	if err := os.WriteFile(filepath.Join(a.dir, "secret.sha256"), []byte(strings.Repeat("0", 64)), 0o644); err != nil {
		t.Fatal(err)
	}
	targets := []string{
		"/artifacts/../store.db",
		"/artifacts/../secret",
		"/artifacts/%2e%2e/secret",
		"/artifacts/%2E%2E/secret",
		"/artifacts/%2e%2e%2fsecret",
		"/artifacts/..%2fsecret",
		"/artifacts/sub/../../secret",
		"/artifacts/sub/%2e%2e/%2e%2e/secret",
		"/artifacts/sub%2f..%2f..%2fsecret",
		"/artifacts//etc/passwd",
		"/artifacts/%2fetc%2fpasswd",
		"/artifacts/%2F..%2Fsecret",
		"/artifacts/..\\secret",
		"/artifacts/..%5csecret",
		"/artifacts/escape",
		"/artifacts/escape-abs",
		"/artifacts/escape-dir/secret",
		"/artifacts/escape-root/etc/passwd",
		"/artifacts/sub/escape-deep",
		"/artifacts/.",
		"/artifacts/./a.txt",
		"/artifacts/",
		"/artifacts/sub",
		"/artifacts/sub/",
		"/artifacts/fifo",
		"/artifacts/a.txt%00",
		"/artifacts/a.txt/",
		"/artifacts/nope",
		"/artifacts/../artifacts/a.txt",
		"/artifacts/../secret.sha256",
	}
	for _, target := range targets {
		code, body := rawGet(t, a.url, target)
		if code != http.StatusNotFound {
			t.Errorf("GET %s = %d %q, want 404", target, code, body)
		}
		if strings.Contains(body, secret) {
			t.Errorf("GET %s served the file outside ArtifactDir", target)
		}
	}
	// What is inside is served, through a symlink too.
	for target, want := range map[string]string{
		"/artifacts/a.txt":        "a",
		"/artifacts/sub/inside":   "inside",
		"/artifacts/link-inside":  "inside",
		"/artifacts/sub%2finside": "inside",
	} {
		if code, body := rawGet(t, a.url, target); code != 200 || body != want {
			t.Errorf("GET %s = %d %q, want 200 %q", target, code, body, want)
		}
	}
}

// TestArtifactConcurrentLarge fetches a 64 MiB sparse file many times at
// once, whole and in ranges.
func TestArtifactConcurrentLarge(t *testing.T) {
	parallel(t)
	a := newArtifactServer(t)
	const size = 64 << 20
	p := filepath.Join(a.artifacts, "big.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse, with data at the start, in the middle and at the end.
	for _, off := range []int64{0, size / 2, size - 16} {
		if _, err := f.WriteAt([]byte("outpost-marker!!"), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	wantSum := sha256.Sum256(want)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", a.url+"/artifacts/big.raw", nil)
			res, err := client.Do(req)
			if err != nil {
				t.Errorf("GET %d: %v", i, err)
				return
			}
			defer res.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, res.Body)
			if err != nil || n != size || [32]byte(h.Sum(nil)) != wantSum {
				t.Errorf("GET %d: %d bytes, %v; want %d bytes identical to the file", i, n, err, size)
			}
		})
		wg.Go(func() {
			off := int64(i) * (size / 8)
			req, _ := http.NewRequestWithContext(t.Context(), "GET", a.url+"/artifacts/big.raw", nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+size/8-1))
			res, err := client.Do(req)
			if err != nil {
				t.Errorf("range %d: %v", i, err)
				return
			}
			defer res.Body.Close()
			got, err := io.ReadAll(res.Body)
			if err != nil || res.StatusCode != 206 || !bytes.Equal(got, want[off:off+size/8]) {
				t.Errorf("range %d: status %d, %d bytes, %v; want 206 and the file's bytes", i, res.StatusCode, len(got), err)
			}
		})
	}
	wg.Wait()
}

// FuzzArtifactPath requests arbitrary paths under /artifacts/ and checks
// that nothing outside ArtifactDir is ever served and nothing panics.
func FuzzArtifactPath(f *testing.F) {
	for _, s := range []string{
		"a.txt", "sub/inside", "link-inside", "../secret", "%2e%2e/secret", "..%2fsecret",
		"escape", "escape-dir/secret", "escape-root/etc/passwd", "sub/escape-deep",
		"/etc/passwd", "sub/../../secret", ".", "", "sub/", "fifo", "a.txt%00", "..\\secret",
		"%2F..%2F..%2Fsecret", "sub//inside", "a.txt?x=..", "a.txt#..", "\x00", "%zz",
		"sha256/" + digestOf([]byte("stored")), "sha256/" + strings.ToUpper(digestOf([]byte("stored"))),
		"sha256/../a.txt", "sha256/" + digestOf([]byte("stored")) + "/..", "sha256/%2e%2e/secret",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	artifacts := filepath.Join(dir, "artifacts")
	if err := os.Mkdir(artifacts, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte(secret), 0o600); err != nil {
		f.Fatal(err)
	}
	escapeFixture(f, artifacts)
	served := map[string]bool{"a": true, "inside": true, "stored": true}
	db, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	st, err := artifact.Open(filepath.Join(dir, "store"))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.Put(context.Background(), strings.NewReader("stored"), "", 6); err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{DB: db, ArtifactDir: artifacts, Credentials: testCredentials, Artifacts: st})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest("GET", "http://198.18.0.1/artifacts/"+p, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.String()
		if strings.Contains(body, secret) {
			t.Fatalf("GET /artifacts/%s served the file outside ArtifactDir", p)
		}
		switch rec.Code {
		case http.StatusOK:
			if !served[body] {
				t.Fatalf("GET /artifacts/%s = 200 %q, not a file of ArtifactDir", p, body)
			}
		case http.StatusNotFound:
		default:
			t.Fatalf("GET /artifacts/%s = %d %q", p, rec.Code, body)
		}
	})
}
