package main

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// appliancedOnce builds applianced once for the package's tests.
var appliancedOnce struct {
	sync.Once
	dir, bin string
	err      error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if appliancedOnce.dir != "" {
		os.RemoveAll(appliancedOnce.dir)
	}
	os.Exit(code)
}

func testApplianced(t *testing.T) string {
	t.Helper()
	o := &appliancedOnce
	o.Do(func() {
		if o.dir, o.err = os.MkdirTemp("", "outpost-bench-test-"); o.err == nil {
			o.bin, o.err = buildApplianced(t.Context(), o.dir)
		}
	})
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.bin
}

// A small artifacts.serve: both servers serve every client the whole
// image, and the line carries every field, each plausible.
func TestArtifactsServe(t *testing.T) {
	lab.Require(t, "nginx") // fails in CI, skips elsewhere
	nginx, err := lookTFTP("nginx", "nginx")
	if err != nil {
		t.Fatal(err)
	}
	cfg := serveConfig{applianced: testApplianced(t), nginx: nginx, bytes: 1<<20 + 7, clients: 4, runs: 3,
		progress: t.Output()}
	res := measureServe(t, cfg)
	for name, runs := range map[string][]float64{"applianced": res.outpost, "nginx": res.nginx} {
		if len(runs) != cfg.runs {
			t.Fatalf("%s: %d runs, want %d", name, len(runs), cfg.runs)
		}
		for i, mibs := range runs {
			if !(mibs > 0) {
				t.Errorf("%s, run %d: %v MiB/s", name, i+1, mibs)
			}
		}
	}
	line := res.line()
	m := regexp.MustCompile(`^BENCH artifacts\.serve clients=4 bytes=1048583 mib_s=(\S+) nginx_mib_s=(\S+) ratio_min=(\S+) spread_pct=(\S+)$`).
		FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("line %q", line)
	}
	for i, field := range []string{"mib_s", "nginx_mib_s", "ratio_min"} {
		if v, err := strconv.ParseFloat(m[i+1], 64); err != nil || !(v > 0) {
			t.Errorf("%s = %q in %q, want a positive number", field, m[i+1], line)
		}
	}
	if v, err := strconv.ParseFloat(m[4], 64); err != nil || v < 0 {
		t.Errorf("spread_pct = %q in %q", m[4], line)
	}
}

// The figures of the line, from runs given.
func TestServeResultLine(t *testing.T) {
	res := serveResult{
		cfg:     serveConfig{bytes: 1 << 20, clients: 100},
		outpost: []float64{900, 1000, 1200},
		nginx:   []float64{1000, 800, 1000},
	}
	want := "BENCH artifacts.serve clients=100 bytes=1048576 mib_s=1000 nginx_mib_s=1000 ratio_min=0.900 spread_pct=20.0"
	if diff := cmp.Diff(want, res.line()); diff != "" {
		t.Errorf("line (-want +got):\n%s", diff)
	}
}

// A round fails when a download is short, or its bytes are not the
// image's.
func TestFetchRoundChecks(t *testing.T) {
	image := []byte(strings.Repeat("outpost ", 4096))
	sum := sha256.Sum256(image)
	want := serveWant{size: int64(len(image)), sha256: sum[:]}
	tests := map[string]struct {
		body    []byte
		wantErr string
	}{
		"whole":     {body: image},
		"short":     {body: image[:len(image)-1], wantErr: "32767 bytes, want 32768"},
		"corrupt":   {body: append([]byte("X"), image[1:]...), wantErr: "sha256"},
		"not found": {wantErr: "404"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.body != nil {
				if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "artifacts", serveImage), tc.body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ts := httptest.NewServer(http.FileServer(http.Dir(dir)))
			defer ts.Close()
			mibs, err := fetchRound(t.Context(), serveServer{name: "test", base: ts.URL}, want, 3)
			switch {
			case tc.wantErr == "" && (err != nil || !(mibs > 0)):
				t.Errorf("fetchRound = %v, %v; want a rate", mibs, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("fetchRound error = %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}
