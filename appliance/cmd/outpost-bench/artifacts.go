package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
)

// The artifacts.serve benchmark's load, settable with -serve-bytes and
// -serve-clients.
var (
	serveBytes   int64 = 256 << 20
	serveClients       = 100
)

const (
	// serveRuns is how many times each contender serves the load.
	serveRuns = 3
	// serveImage is the served file's name under the artifact directory.
	serveImage = "bench-image.raw"
)

// serveConfig is one artifacts.serve measurement.
type serveConfig struct {
	applianced, nginx string // the two servers' programs
	bytes             int64  // the image's size
	clients, runs     int
	progress          io.Writer // a line per run
}

// serveResult is each contender's MiB/s, run by run.
type serveResult struct {
	cfg            serveConfig
	outpost, nginx []float64
}

// benchArtifactsServe measures how fast one appliance serves one image to
// many machines at once, beside Debian's nginx serving the same file on
// the same machine: serveClients clients (one connection and one request
// each) download a serveBytes image of random bytes whole from each
// server over loopback, every client checking the byte count and one the
// sha256. A run is one such round; MiB/s is all the bytes over its wall
// clock. Each server serves serveRuns runs, interleaved (applianced,
// nginx, applianced, ...), after the file was read once into the page
// cache. It prints
//
//	BENCH artifacts.serve clients=<n> bytes=<n> mib_s=<median> nginx_mib_s=<median> ratio_min=<r> spread_pct=<p>
//
// where ratio_min is the smallest of the runs' applianced/nginx ratios
// (run i against run i) and spread_pct the largest deviation of a run
// from its contender's median, in percent. The duration flag does not
// apply: the work is fixed.
func benchArtifactsServe(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	// Stopped, it still removes its 256 MiB image and stops its servers.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if serveBytes < 1 || serveClients < 1 {
		return fmt.Errorf("-serve-bytes %d, -serve-clients %d: both must be at least 1", serveBytes, serveClients)
	}
	nginx, err := lookTFTP("nginx", "nginx")
	if err != nil {
		return err
	}
	var res serveResult
	r := lab.NewRunner(ctx, "bench-artifacts", discardLog{log})
	err = r.Run(func(t lab.T) {
		applianced, err := buildApplianced(ctx, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		res = measureServe(t, serveConfig{applianced: applianced, nginx: nginx, bytes: serveBytes,
			clients: serveClients, runs: serveRuns, progress: os.Stderr})
	})
	if err != nil {
		return err
	}
	fmt.Println(res.line())
	return nil
}

// measureServe writes the image, starts both servers and runs the load
// against each in turn.
func measureServe(t lab.T, cfg serveConfig) serveResult {
	artifacts := filepath.Join(t.TempDir(), "artifacts")
	sum, err := writeServeImage(artifacts, cfg.bytes)
	if err != nil {
		t.Fatalf("write the image: %v", err)
	}
	want := serveWant{size: cfg.bytes, sha256: sum}
	servers := []serveServer{startServeApplianced(t, cfg.applianced, artifacts), startServeNginx(t, cfg.nginx, artifacts)}
	for _, srv := range servers {
		if err := waitServed(t.Context(), srv, want); err != nil {
			t.Fatal(err)
		}
	}
	if err := warmPageCache(filepath.Join(artifacts, serveImage)); err != nil {
		t.Fatal(err)
	}
	res := serveResult{cfg: cfg}
	runs := [][]float64{nil, nil}
	for i := range cfg.runs {
		for k, srv := range servers {
			mibs, cpu, err := serveRun(t.Context(), srv, want, cfg.clients)
			if err != nil {
				t.Fatalf("%s, run %d: %v", srv.name, i+1, err)
			}
			runs[k] = append(runs[k], mibs)
			fmt.Fprintf(cfg.progress, "artifacts.serve: run %d: %s %.0f MiB/s, server CPU %.2f s\n", i+1, srv.name, mibs, cpu)
		}
	}
	res.outpost, res.nginx = runs[0], runs[1]
	return res
}

// serveRun is one round of fetchRound against srv, and the CPU seconds
// srv's processes spent in it.
func serveRun(ctx context.Context, srv serveServer, want serveWant, clients int) (mibs, cpu float64, err error) {
	before, err := treeCPUSeconds(srv.pid)
	if err != nil {
		return 0, 0, err
	}
	if mibs, err = fetchRound(ctx, srv, want, clients); err != nil {
		return 0, 0, err
	}
	after, err := treeCPUSeconds(srv.pid)
	return mibs, after - before, err
}

// treeCPUSeconds is the CPU time of process pid and its descendants
// (nginx's workers).
func treeCPUSeconds(pid int) (float64, error) {
	secs, err := cpuSeconds(pid)
	if err != nil {
		return 0, err
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	for _, f := range strings.Fields(string(raw)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%d/children: %q", pid, pid, f)
		}
		if c, err := treeCPUSeconds(child); err == nil {
			secs += c // a child gone meanwhile spent nothing here
		}
	}
	return secs, nil
}

// line is the result's BENCH line.
func (r serveResult) line() string {
	o, n := median(r.outpost), median(r.nginx)
	ratioMin := math.Inf(1)
	for i := range r.outpost {
		ratioMin = min(ratioMin, r.outpost[i]/r.nginx[i])
	}
	spread := max(spreadPct(r.outpost), spreadPct(r.nginx))
	return fmt.Sprintf("BENCH artifacts.serve clients=%d bytes=%d mib_s=%.0f nginx_mib_s=%.0f ratio_min=%.3f spread_pct=%.1f",
		r.cfg.clients, r.cfg.bytes, o, n, ratioMin, spread)
}

// spreadPct is the largest deviation of one of xs from their median, in
// percent of it.
func spreadPct(xs []float64) float64 {
	m := median(xs)
	var worst float64
	for _, x := range xs {
		worst = max(worst, math.Abs(x-m))
	}
	return 100 * worst / m
}

// writeServeImage writes size random bytes to dir/serveImage, and their
// sha256 beside it in sha256sum's format (the boot HTTP service's
// sidecar), and returns the sum. dir and the files are readable by all:
// nginx's workers read them too.
func writeServeImage(dir string, size int64) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, serveImage), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	_, err = io.CopyN(io.MultiWriter(f, h), rand.Reader, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	sum := h.Sum(nil)
	side := hex.EncodeToString(sum) + "  " + serveImage + "\n"
	return sum, os.WriteFile(filepath.Join(dir, serveImage+".sha256"), []byte(side), 0o644)
}

// warmPageCache reads the file through once, so that every run serves
// it from memory.
func warmPageCache(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
	return err
}
