package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/labsite"
	cclient "github.com/outposthq/outpost/central/client"
)

// fanoutBytes is the size of the image artifacts.fanout publishes,
// settable with -fanout-bytes.
var fanoutBytes int64 = 1 << 30

const (
	// fanoutRuns is how many times artifacts.fanout publishes an image,
	// each time to a new central and site.
	fanoutRuns = 3
	// fanoutNodes is the size of the site.
	fanoutNodes = 3
	// fanoutSite and fanoutImage name the site and its image at central.
	fanoutSite  = "fanout"
	fanoutImage = "fanout"
)

// fanoutConfig is one artifacts.fanout measurement.
type fanoutConfig struct {
	centrald, applianced string // the programs
	bytes                int64  // the image's size
	runs                 int
	progress             io.Writer // a line per run
}

// fanoutRun is one run's figures.
type fanoutRun struct {
	seconds float64 // from the image's PUT at central until every node holds it
	pulled  float64 // from the PUT until one node held it (seen by a poll)
	wan     int64   // what central counts it sent the site
}

// fanoutResult is every run of a measurement.
type fanoutResult struct {
	cfg  fanoutConfig
	runs []fanoutRun
}

// benchArtifactsFanout measures how long an image published at central
// takes to reach every node of a site, and checks that it crossed the
// WAN once: a run starts one centrald serving HTTPS (a certificate of a
// lab CA, which the site's nodes trust alone through
// -central-ca-file) and a site of three applianced on loopback (n1
// bootstraps, n2 and n3 join), pushes a fanoutBytes image of random
// bytes to central's catalogue, then PUTs the site's image naming its
// digest: seconds is from that PUT until the site's API lists all three
// nodes holding the artifact (polled every 150 ms). Then it hashes each
// node's copy, and reads what central sent the site (its
// artifacts.sent_bytes) and what the nodes fetched from past the site.
// Each run has a central and a site of its own, removed (with their 4
// copies of the image) before the next. It prints
//
//	BENCH artifacts.fanout nodes=3 bytes=<n> wan_bytes=<n> seconds=<median> mib_s=<bytes/median> spread_pct=<p>
//
// and fails if a run's wan_bytes (shown: the first that is not bytes,
// else bytes) is not the image's size. The duration flag does not apply.
func benchArtifactsFanout(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	// Stopped, it still stops its processes and removes its files.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if fanoutBytes < 1 {
		return fmt.Errorf("-fanout-bytes %d: must be at least 1", fanoutBytes)
	}
	centrald, applianced, remove, err := buildDaemons(ctx, "fanout")
	if err != nil {
		return err
	}
	defer remove()
	res, err := measureFanout(ctx, discardLog{log}, fanoutConfig{centrald: centrald, applianced: applianced,
		bytes: fanoutBytes, runs: fanoutRuns, progress: os.Stderr})
	if err != nil {
		return err
	}
	fmt.Println(res.line())
	return res.check()
}

// measureFanout does cfg.runs runs, each in a lab of its own (logging to
// out) whose processes and files are gone when it returns.
func measureFanout(ctx context.Context, out io.Writer, cfg fanoutConfig) (fanoutResult, error) {
	res := fanoutResult{cfg: cfg}
	for i := range cfg.runs {
		var run fanoutRun
		r := lab.NewRunner(ctx, "bench-fanout", out)
		if err := r.Run(func(t lab.T) { run = fanoutOnce(t, cfg) }); err != nil {
			return res, fmt.Errorf("run %d: %w", i+1, err)
		}
		fmt.Fprintf(cfg.progress, "artifacts.fanout: run %d: %d bytes on %d nodes in %.2fs (%.0f MiB/s; one node held it after %.2fs), central sent %d\n",
			i+1, cfg.bytes, fanoutNodes, run.seconds, mibPerSecond(cfg.bytes, run.seconds), run.pulled, run.wan)
		res.runs = append(res.runs, run)
	}
	return res, nil
}

// fanoutOnce is one run: a central, a site, an image published and
// fanned out, each node's copy checked.
func fanoutOnce(t lab.T, cfg fanoutConfig) fanoutRun {
	ca := lab.NewCA(t, "central CA")
	cen := labsite.StartCentralTLS(t, cfg.centrald, freeLoopback(t), ca, "-log-level", "warn")
	cc := cclient.New(cen.URL, cen.Token, &http.Client{Timeout: time.Minute,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}})
	credFile := cen.NewSite(fanoutSite)
	nodes := startFanoutSite(t, cfg.applianced, cen.SyncArgs(cen.URL, fanoutSite, credFile))
	waitSiteConnected(t, cc, fanoutSite, true)
	sum := pushFanoutImage(t, cc, cfg.bytes)

	img := fmt.Appendf(nil, `{"name":%q,"type":"os","sha256":%q,"format":"raw"}`, fanoutImage, sum)
	start := time.Now()
	if _, err := cc.Put(t.Context(), fanoutSite, "images", fanoutImage, img); err != nil {
		t.Fatalf("put the site's image at central: %v", err)
	}
	first := waitHeldEverywhere(t, nodes[0], sum)
	secs := time.Since(start).Seconds()

	for _, n := range nodes {
		if err := checkCopy(n.artifactPath(sum), sum, cfg.bytes); err != nil {
			t.Fatalf("node %s: %v", n.id, err)
		}
	}
	wan, peer := siteFetched(t, nodes[0])
	sent := centralSent(t, cc, cfg.bytes)
	if wan != cfg.bytes {
		t.Fatalf("the site's nodes fetched %d bytes from past the site, want the image's %d (and %d from peers)", wan, cfg.bytes, peer)
	}
	return fanoutRun{seconds: secs, pulled: first.Sub(start).Seconds(), wan: sent}
}

// pushFanoutImage writes size random bytes, uploads them to central's
// catalogue, streamed, and removes the file; it returns their sha256, in
// hex.
func pushFanoutImage(t lab.T, cc *cclient.Client, size int64) string {
	dir := filepath.Join(t.TempDir(), "image")
	raw, err := writeServeImage(dir, size)
	if err != nil {
		t.Fatalf("write the image: %v", err)
	}
	defer os.RemoveAll(dir)
	sum := hex.EncodeToString(raw)
	f, err := os.Open(filepath.Join(dir, serveImage))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a, err := cc.PushArtifact(t.Context(), f, size, cclient.PushOptions{SHA256: sum, Name: fanoutImage, Type: "os"})
	if err != nil {
		t.Fatalf("push the image to central: %v", err)
	}
	if a.SHA256 != sum || a.Size != size {
		t.Fatalf("central catalogued %s, %d bytes; pushed %s, %d bytes", a.SHA256, a.Size, sum, size)
	}
	return sum
}

// waitSiteConnected waits until central sees site connected (or, with
// want false, not), so that a run times the fan-out rather than the
// site's first connection.
func waitSiteConnected(t lab.T, cc *cclient.Client, site string, want bool) {
	err := pollEvery(t.Context(), 100*time.Millisecond, 2*time.Minute, func() error {
		s, err := cc.Site(t.Context(), site)
		if err == nil && s.Sync.Connected != want {
			err = fmt.Errorf("central sees site %s connected=%v, want %v", site, s.Sync.Connected, want)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// centralSent waits until central has counted at least want bytes sent
// to the site (it counts them as a transfer goes, and stores the count
// shortly after), and returns its count.
func centralSent(t lab.T, cc *cclient.Client, want int64) int64 {
	var sent int64
	err := pollEvery(t.Context(), 100*time.Millisecond, time.Minute, func() error {
		s, err := cc.Site(t.Context(), fanoutSite)
		if err != nil {
			return err
		}
		if sent = s.Artifacts.SentBytes; sent < want {
			return fmt.Errorf("central counts %d bytes sent to site %s, want %d", sent, fanoutSite, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

// checkCopy hashes a node's copy of the artifact.
func checkCopy(path, sum string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return fmt.Errorf("%s: %d bytes of sha256 %s, want %d of %s", path, n, got, size, sum)
	}
	return nil
}

// line is the result's BENCH line.
func (r fanoutResult) line() string {
	secs := make([]float64, len(r.runs))
	for i, run := range r.runs {
		secs[i] = run.seconds
	}
	s := median(secs)
	return fmt.Sprintf("BENCH artifacts.fanout nodes=%d bytes=%d wan_bytes=%d seconds=%.2f mib_s=%.0f spread_pct=%.1f",
		fanoutNodes, r.cfg.bytes, r.wanBytes(), s, mibPerSecond(r.cfg.bytes, s), spreadPct(secs))
}

// wanBytes is the first run's WAN bytes that are not the image's size,
// or the image's size.
func (r fanoutResult) wanBytes() int64 {
	for _, run := range r.runs {
		if run.wan != r.cfg.bytes {
			return run.wan
		}
	}
	return r.cfg.bytes
}

// check fails a result whose image crossed the WAN other than once.
func (r fanoutResult) check() error {
	for i, run := range r.runs {
		if run.wan != r.cfg.bytes {
			return fmt.Errorf("run %d: central sent the site %d bytes of a %d-byte image: the image must cross the WAN once", i+1, run.wan, r.cfg.bytes)
		}
	}
	return nil
}

// mibPerSecond is bytes over secs, in MiB/s.
func mibPerSecond(bytes int64, secs float64) float64 {
	return float64(bytes) / (1 << 20) / secs
}
