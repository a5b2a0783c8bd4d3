package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/syncproto"
)

// syncSites is how many simulated sites sync.sites connects to central
// (-sync-sites): ten times the 1,000 of issue 14's day.
var syncSites = 10000

// syncPprof, when set (-sync-pprof), is the directory where sync.sites
// writes centrald's profiles; centrald is then built with -tags pprof.
var syncPprof string

// sitesPerSource is how many simulated sites dial from one loopback
// address (127.0.1.1, 127.0.1.2, ...): a fleet's sites come from many
// addresses, and central caps the connections of one
// (config.DefaultMaxConnsPerSource).
const sitesPerSource = 500

// benchSyncSites connects syncSites simulated sites (sim.Site) to one
// centrald, each a websocket speaking syncproto from the benchmark
// process, then places one order per site at central's API, 64 PUTs at
// a time. order_p50_ms and order_p99_ms are from the start of each PUT
// to its site receiving the revision that holds the order; rss_mb is
// centrald's resident memory once every order is delivered, with every
// site still connected.
func benchSyncSites(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	n := syncSites
	if n < 1 || n > sitesPerSource*254 {
		return fmt.Errorf("-sync-sites %d: want 1 to %d", n, sitesPerSource*254)
	}
	if err := raiseOpenFiles(n); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "outpost-bench-sync-sites-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var flags []string
	if syncPprof != "" {
		flags = []string{"-tags", "pprof"}
	}
	centrald, err := goBuild(ctx, dir, "centrald", "./central/cmd/centrald", flags...)
	if err != nil {
		return err
	}
	var line string
	r := lab.NewRunner(ctx, "bench-sync-sites", discardLog{log})
	err = r.Run(func(t lab.T) {
		var prof *profiler
		if syncPprof != "" {
			prof = &profiler{name: "centrald", addr: freeLoopback(t), dir: syncPprof}
		}
		cen := startCentral(t, centrald, 1, prof.env()...)
		creds := createSites(t, cen, n, 64)
		fleet := &siteFleet{delivered: make([]atomic.Int64, n), all: make(chan struct{})}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t.Cleanup(fleet.wait)
		t.Cleanup(cancel)
		start := time.Now()
		if err := fleet.connect(sctx, "ws://"+cen.addr+syncproto.Path, creds, 64); err != nil {
			t.Fatal(err)
		}
		if err := waitAllConnected(ctx, cen, n); err != nil {
			t.Fatal(err)
		}
		connected := time.Since(start)

		// Other work on the host moves the p99 a lot: say how busy it is.
		fmt.Fprintf(os.Stderr, "sync.sites: orders start; load average %s\n", loadAverage())
		cpu := prof.startTimed(t.Context())
		start = time.Now()
		placed, took := placeOrders(t, cen, n, 64)
		placing := time.Since(start)
		select {
		case <-fleet.all:
		case err := <-fleet.errs():
			t.Fatalf("a simulated site: %v", err)
		case <-time.After(5 * time.Minute):
			t.Fatalf("%d of %d orders delivered after 5m", fleet.count.Load(), n)
		}
		lats := make([]time.Duration, n)
		for i := range lats {
			lats[i] = time.Duration(fleet.delivered[i].Load() - placed[i])
		}
		slices.Sort(lats)
		rss, err := rssMB(cen.proc.Pid())
		if err != nil {
			t.Fatal(err)
		}
		if err := prof.finish(t.Context(), cpu); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "sync.sites: %d sites connected in %.1fs; %d orders placed in %.1fs (PUT p50 %.1f ms, p99 %.1f ms); delivered: max %.1f ms\n",
			n, connected.Seconds(), n, placing.Seconds(), ms(took[n/2]), ms(took[n*99/100]), ms(lats[n-1]))
		line = fmt.Sprintf("BENCH sync.sites sites=%d rss_mb=%d order_p50_ms=%.1f order_p99_ms=%.1f",
			n, rss, ms(lats[n/2]), ms(lats[n*99/100]))
	})
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// raiseOpenFiles raises this process's open-files limit to its hard
// limit, and the hard limit too if it is below what n sites take (as
// root; centrald and the benchmark each hold one socket per site); the
// processes it starts inherit it.
func raiseOpenFiles(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	want := uint64(n) + 4096
	lim.Max = max(lim.Max, want)
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open-files limit to %d for %d sites: %w", want, n, err)
	}
	return nil
}

// siteID names simulated site i.
func siteID(i int) string { return fmt.Sprintf("sim%05d", i) }

// orderID names simulated site i's order.
func orderID(i int) string { return fmt.Sprintf("o%05d", i) }

// createSites creates n sites at central, clients at a time, and returns
// their credentials.
func createSites(t lab.T, cen *centralProc, n, clients int) []string {
	creds := make([]string, n)
	forEach(t, n, clients, func(i int) error {
		var created struct {
			Credential string `json:"credential"`
		}
		err := cen.do(t.Context(), "POST", "/v1/sites", map[string]string{"id": siteID(i), "name": siteID(i)}, &created)
		creds[i] = created.Credential
		return err
	})
	return creds
}

// placeOrders places one order at each of n sites, clients at a time,
// and returns when each PUT started, in unix nanoseconds, and how long
// each took (central's answer: the order is committed).
func placeOrders(t lab.T, cen *centralProc, n, clients int) (placed []int64, took []time.Duration) {
	placed, took = make([]int64, n), make([]time.Duration, n)
	forEach(t, n, clients, func(i int) error {
		placed[i] = time.Now().UnixNano()
		o := map[string]string{"action": "power_on", "machine_id": "m1"}
		err := cen.do(t.Context(), "PUT", fmt.Sprintf("/v1/sites/%s/orders/%s", siteID(i), orderID(i)), o, nil)
		took[i] = time.Duration(time.Now().UnixNano() - placed[i])
		return err
	})
	slices.Sort(took)
	return placed, took
}

// forEach calls f(0) ... f(n-1), clients at a time, failing t if any
// fails.
func forEach(t lab.T, n, clients int, f func(i int) error) {
	var next atomic.Int64
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err, ok := <-errs; ok {
		t.Fatalf("%d of %d calls failed, the first: %v", len(errs)+1, n, err)
	}
}

// waitAllConnected waits until central lists n sites as connected.
func waitAllConnected(ctx context.Context, cen *centralProc, n int) error {
	return pollEvery(ctx, time.Second, 5*time.Minute, func() error {
		var list struct {
			Sites []struct {
				Sync struct {
					Connected bool `json:"connected"`
				} `json:"sync"`
			} `json:"sites"`
		}
		if err := cen.do(ctx, "GET", "/v1/sites", nil, &list); err != nil {
			return err
		}
		c := 0
		for _, s := range list.Sites {
			if s.Sync.Connected {
				c++
			}
		}
		if c != n {
			return fmt.Errorf("central lists %d of %d sites connected", c, n)
		}
		return nil
	})
}

// loadAverage is the host's load average over 1, 5 and 15 minutes.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(raw)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// rssMB is process pid's resident memory (VmRSS) in MiB.
func rssMB(pid int) (int, error) {
	raw, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(raw)) {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			return kb >> 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

// siteFleet is sync.sites' simulated sites (sim.Site), each recording
// when its order arrives.
type siteFleet struct {
	// delivered[i] is when site i received its order, in unix
	// nanoseconds (0: not yet).
	delivered []atomic.Int64
	count     atomic.Int64
	all       chan struct{} // closed when every site has its order
	errCh     chan error
	wg        sync.WaitGroup
}

func (s *siteFleet) errs() <-chan error { return s.errCh }

// wait waits for the sites' goroutines to end.
func (s *siteFleet) wait() { s.wg.Wait() }

// connect connects every site, dialing clients at a time, sitesPerSource
// of them from each loopback source address, and returns once each has
// its welcome; the sites then run until ctx ends.
func (s *siteFleet) connect(ctx context.Context, url string, creds []string, clients int) error {
	s.errCh = make(chan error, len(creds))
	via := make([]*http.Client, (len(creds)+sitesPerSource-1)/sitesPerSource)
	for i := range via {
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i+1))}
		via[i] = &http.Client{Transport: &http.Transport{
			DialContext:       (&net.Dialer{LocalAddr: local}).DialContext,
			DisableKeepAlives: true,
		}}
	}
	sem := make(chan struct{}, clients)
	welcomed := make(chan error, len(creds))
	for i, cred := range creds {
		sem <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			site, err := sim.DialSiteVia(ctx, via[i/sitesPerSource], url, siteID(i), cred)
			<-sem
			welcomed <- err
			if err != nil {
				return
			}
			defer site.Close()
			if err := site.Run(ctx, s.orderArrived(i)); err != nil && ctx.Err() == nil {
				s.errCh <- fmt.Errorf("%s: %w", siteID(i), err)
			}
		}()
	}
	for range creds {
		if err := <-welcomed; err != nil {
			return err
		}
	}
	return nil
}

// orderArrived returns site i's handler of changes: it records when the
// site's order first arrives, and closes all with the last site's.
func (s *siteFleet) orderArrived(i int) func(syncproto.Change) {
	order := orderID(i)
	return func(c syncproto.Change) {
		if c.Kind == "order" && c.Key == order && s.delivered[i].CompareAndSwap(0, time.Now().UnixNano()) {
			if s.count.Add(1) == int64(len(s.delivered)) {
				close(s.all)
			}
		}
	}
}
