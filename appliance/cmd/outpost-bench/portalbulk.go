package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/lab/sim"
	"github.com/outposthq/outpost/syncproto"
)

// The shape of portal.bulk: bulkSites simulated sites of bulkPerSite
// machines each, and the events a simulated site records for one power
// order (sim.Site.AnswerOrders).
const (
	bulkSites      = 100
	bulkPerSite    = 10
	eventsPerOrder = 5
)

// benchPortalBulk connects bulkSites simulated sites (sim.Site, which
// answer each order with the events a real site's order makes) to one
// centrald whose desired state gives each bulkPerSite machines, then
// places one bulk order at central's API: a power cycle of every machine
// a query selects. seconds runs from the start of POST /v1/orders to the
// moment central has stored the last event of the last order's result
// (every site's stored sequence at its orders' events).
func benchPortalBulk(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	dir, err := os.MkdirTemp("", "outpost-bench-portal-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	centrald, err := goBuild(ctx, dir, "centrald", "./central/cmd/centrald")
	if err != nil {
		return err
	}
	var line string
	r := lab.NewRunner(ctx, "bench-portal-bulk", discardLog{log})
	err = r.Run(func(t lab.T) {
		cen := startCentral(t, centrald, 1)
		creds := createSites(t, cen, bulkSites, 32)
		forEach(t, bulkSites*bulkPerSite, 32, func(i int) error {
			site, m := siteID(i/bulkPerSite), fmt.Sprintf("m%02d", i%bulkPerSite)
			return cen.do(t.Context(), "PUT", "/v1/sites/"+site+"/machines/"+m, map[string]any{"id": m, "tags": []string{"bulk"}}, nil)
		})
		sctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		t.Cleanup(wg.Wait)
		t.Cleanup(cancel)
		errs := connectAnswering(sctx, t, &wg, "ws://"+cen.addr+syncproto.Path, creds)
		if err := waitSitesConnected(ctx, cen, bulkSites); err != nil {
			t.Fatal(err)
		}

		start := time.Now()
		var res struct {
			Batch   string `json:"batch"`
			Placed  []any  `json:"placed"`
			Refused []any  `json:"refused"`
		}
		req := map[string]any{"action": "power", "query": "tag:bulk", "params": map[string]string{"power": "cycle"}}
		if err := cen.do(t.Context(), "POST", "/v1/orders", req, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Placed) != bulkSites*bulkPerSite || len(res.Refused) != 0 {
			t.Fatalf("the bulk order placed %d and refused %d, want %d placed", len(res.Placed), len(res.Refused), bulkSites*bulkPerSite)
		}
		done := make(chan error, 1)
		go func() { done <- waitResults(ctx, cen, bulkPerSite*eventsPerOrder) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case err := <-errs:
			t.Fatalf("a simulated site: %v", err)
		}
		line = fmt.Sprintf("BENCH portal.bulk machines=%d sites=%d seconds=%.2f", bulkSites*bulkPerSite, bulkSites, time.Since(start).Seconds())
	})
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// connectAnswering connects a simulated site per credential, each
// answering the orders it receives, and returns once every one has its
// welcome; the sites run until ctx ends. A site that fails sends its
// error.
func connectAnswering(ctx context.Context, t lab.T, wg *sync.WaitGroup, url string, creds []string) <-chan error {
	errs := make(chan error, len(creds))
	forEach(t, len(creds), 32, func(i int) error {
		site, err := sim.DialSite(ctx, url, siteID(i), creds[i])
		if err != nil {
			return err
		}
		site.AnswerOrders()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer site.Close()
			if err := site.Run(ctx, func(syncproto.Change) {}); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", site.ID, err)
			}
		}()
		return nil
	})
	return errs
}

// siteList is GET /v1/sites, what portal.bulk reads of it.
type siteList struct {
	Sites []struct {
		ID   string `json:"id"`
		Sync struct {
			Connected bool   `json:"connected"`
			StoredSeq uint64 `json:"stored_seq"`
		} `json:"sync"`
	} `json:"sites"`
}

// waitSitesConnected waits until central lists n sites connected.
func waitSitesConnected(ctx context.Context, cen *centralProc, n int) error {
	return pollSites(ctx, cen, time.Minute, func(list *siteList) error {
		if c := list.count(func(connected bool, _ uint64) bool { return connected }); c != n {
			return fmt.Errorf("central lists %d of %d sites connected", c, n)
		}
		return nil
	})
}

// waitResults waits until central has stored want events of every site:
// the last of each is its last order's result.
func waitResults(ctx context.Context, cen *centralProc, want uint64) error {
	return pollSites(ctx, cen, 2*time.Minute, func(list *siteList) error {
		if behind := list.count(func(_ bool, stored uint64) bool { return stored < want }); behind > 0 {
			return fmt.Errorf("%d of %d sites' results are not all stored at central", behind, len(list.Sites))
		}
		return nil
	})
}

// pollSites reads GET /v1/sites until check accepts it, or timeout.
func pollSites(ctx context.Context, cen *centralProc, timeout time.Duration, check func(*siteList) error) error {
	return pollEvery(ctx, 20*time.Millisecond, timeout, func() error {
		var list siteList
		if err := cen.do(ctx, "GET", "/v1/sites", nil, &list); err != nil {
			return err
		}
		return check(&list)
	})
}

// count counts the sites for which is holds.
func (l *siteList) count(is func(connected bool, stored uint64) bool) int {
	n := 0
	for _, s := range l.Sites {
		if is(s.Sync.Connected, s.Sync.StoredSeq) {
			n++
		}
	}
	return n
}
