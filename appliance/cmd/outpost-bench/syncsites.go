package main

import (
	"context"
	"fmt"
	"log/slog"
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

// syncSites is how many simulated sites sync.sites connects to central.
const syncSites = 1000

// benchSyncSites connects syncSites simulated sites (sim.Site) to one
// centrald, each a websocket speaking syncproto from the benchmark
// process, then places
// one order per site at central's API. order_p50_ms and order_p99_ms are
// from the start of each PUT to its site receiving the revision that
// holds the order; rss_mb is centrald's resident memory once every order
// is delivered.
func benchSyncSites(ctx context.Context, log *slog.Logger, centrald string) error {
	if err := raiseOpenFiles(); err != nil {
		return err
	}
	var line string
	r := lab.NewRunner(ctx, "bench-sync-sites", discardLog{log})
	err := r.Run(func(t lab.T) {
		cen := startCentral(t, centrald, 1)
		creds := createSites(t, cen, syncSites, 64)
		fleet := &siteFleet{delivered: make([]atomic.Int64, syncSites), all: make(chan struct{})}
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		t.Cleanup(fleet.wait)
		t.Cleanup(cancel)
		if err := fleet.connect(sctx, "ws://"+cen.addr+syncproto.Path, creds, 64); err != nil {
			t.Fatal(err)
		}
		if err := waitAllConnected(ctx, cen); err != nil {
			t.Fatal(err)
		}

		placed := placeOrders(t, cen, 64)
		select {
		case <-fleet.all:
		case err := <-fleet.errs():
			t.Fatalf("a simulated site: %v", err)
		case <-time.After(2 * time.Minute):
			t.Fatalf("%d of %d orders delivered after 2m", fleet.count.Load(), syncSites)
		}
		lats := make([]time.Duration, syncSites)
		for i := range lats {
			lats[i] = time.Duration(fleet.delivered[i].Load() - placed[i])
		}
		slices.Sort(lats)
		rss, err := rssMB(cen.proc.Pid())
		if err != nil {
			t.Fatal(err)
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		line = fmt.Sprintf("BENCH sync.sites sites=%d rss_mb=%d order_p50_ms=%.1f order_p99_ms=%.1f",
			syncSites, rss, ms(lats[len(lats)/2]), ms(lats[len(lats)*99/100]))
	})
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// raiseOpenFiles raises this process's open-files limit to its hard
// limit; the processes it starts inherit it.
func raiseOpenFiles() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Max < 2*syncSites+1024 {
		return fmt.Errorf("the hard open-files limit is %d, too low for %d sites", lim.Max, syncSites)
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// siteID names simulated site i.
func siteID(i int) string { return fmt.Sprintf("sim%04d", i) }

// orderID names simulated site i's order.
func orderID(i int) string { return fmt.Sprintf("o%04d", i) }

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

// placeOrders places one order per site, clients at a time, and returns
// when each PUT started, in unix nanoseconds.
func placeOrders(t lab.T, cen *centralProc, clients int) []int64 {
	placed := make([]int64, syncSites)
	forEach(t, syncSites, clients, func(i int) error {
		placed[i] = time.Now().UnixNano()
		o := map[string]string{"action": "power_on", "machine_id": "m1"}
		return cen.do(t.Context(), "PUT", fmt.Sprintf("/v1/sites/%s/orders/%s", siteID(i), orderID(i)), o, nil)
	})
	return placed
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

// waitAllConnected waits until central lists every site as connected.
func waitAllConnected(ctx context.Context, cen *centralProc) error {
	return pollEvery(ctx, 200*time.Millisecond, time.Minute, func() error {
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
		n := 0
		for _, s := range list.Sites {
			if s.Sync.Connected {
				n++
			}
		}
		if n != syncSites {
			return fmt.Errorf("central lists %d of %d sites connected", n, syncSites)
		}
		return nil
	})
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

// connect connects every site, dialing clients at a time, and returns
// once each has its welcome; the sites then run until ctx ends.
func (s *siteFleet) connect(ctx context.Context, url string, creds []string, clients int) error {
	s.errCh = make(chan error, len(creds))
	sem := make(chan struct{}, clients)
	welcomed := make(chan error, len(creds))
	for i, cred := range creds {
		sem <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			site, err := sim.DialSite(ctx, url, siteID(i), cred)
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
