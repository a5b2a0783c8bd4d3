package main

import (
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// centraldOnce builds centrald once for the package's tests, beside
// applianced.
var centraldOnce struct {
	sync.Once
	bin string
	err error
}

func testCentrald(t *testing.T) string {
	t.Helper()
	testApplianced(t) // makes the directory
	o := &centraldOnce
	o.Do(func() { o.bin, o.err = goBuild(t.Context(), appliancedOnce.dir, "centrald", "./central/cmd/centrald") })
	if o.err != nil {
		t.Fatal(o.err)
	}
	return o.bin
}

// A small artifacts.fanout: each run's image reaches the three nodes
// (the runs hash each copy), central sent the site the image once, and
// the line carries every field.
func TestArtifactsFanout(t *testing.T) {
	cfg := fanoutConfig{centrald: testCentrald(t), applianced: testApplianced(t), bytes: 3<<20 + 5, runs: 2,
		progress: t.Output()}
	res, err := measureFanout(t.Context(), t.Output(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.runs) != cfg.runs {
		t.Fatalf("%d runs, want %d", len(res.runs), cfg.runs)
	}
	for i, run := range res.runs {
		if run.wan != cfg.bytes || !(run.seconds > 0) {
			t.Errorf("run %d: central sent %d bytes in %vs; want the image's %d once", i+1, run.wan, run.seconds, cfg.bytes)
		}
	}
	if err := res.check(); err != nil {
		t.Error(err)
	}
	line := res.line()
	m := regexp.MustCompile(`^BENCH artifacts\.fanout nodes=3 bytes=3145733 wan_bytes=3145733 seconds=(\S+) mib_s=(\S+) spread_pct=(\S+)$`).
		FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("line %q", line)
	}
	for i, field := range []string{"seconds", "mib_s"} {
		if v, err := strconv.ParseFloat(m[i+1], 64); err != nil || !(v > 0) {
			t.Errorf("%s = %q in %q, want a positive number", field, m[i+1], line)
		}
	}
	if v, err := strconv.ParseFloat(m[3], 64); err != nil || v < 0 {
		t.Errorf("spread_pct = %q in %q", m[3], line)
	}
}

// The figures of the line from runs given, and a run whose image crossed
// the WAN twice failing the benchmark.
func TestFanoutResult(t *testing.T) {
	tests := map[string]struct {
		runs     []fanoutRun
		wantLine string
		wantErr  string
	}{
		"once": {
			runs:     []fanoutRun{{seconds: 8, wan: 1 << 30}, {seconds: 10, wan: 1 << 30}, {seconds: 12, wan: 1 << 30}},
			wantLine: "BENCH artifacts.fanout nodes=3 bytes=1073741824 wan_bytes=1073741824 seconds=10.00 mib_s=102 spread_pct=20.0",
		},
		"twice": {
			runs:     []fanoutRun{{seconds: 10, wan: 1 << 30}, {seconds: 10, wan: 2 << 30}, {seconds: 10, wan: 1 << 30}},
			wantLine: "BENCH artifacts.fanout nodes=3 bytes=1073741824 wan_bytes=2147483648 seconds=10.00 mib_s=102 spread_pct=0.0",
			wantErr:  "run 2: central sent the site 2147483648 bytes of a 1073741824-byte image: the image must cross the WAN once",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			res := fanoutResult{cfg: fanoutConfig{bytes: 1 << 30}, runs: tc.runs}
			if diff := cmp.Diff(tc.wantLine, res.line()); diff != "" {
				t.Errorf("line (-want +got):\n%s", diff)
			}
			err := res.check()
			if got := errString(err); got != tc.wantErr {
				t.Errorf("check() = %q, want %q", got, tc.wantErr)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
