package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/outposthq/outpost/appliance/internal/actions"
	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/appliance/internal/workflow"
)

// The site the console.page benchmark searches.
const (
	pageMachines = 1000
	pageEvents   = 20000
	pageRounds   = 3
	// pageRequests is how many searches one round makes, cycling through
	// pageQueries.
	pageRequests = 200
)

// pageQueries are what a technician types into the machines page.
var pageQueries = []string{
	"",
	"state:failed,provisioning",
	"ip:198.18.0.0/23 -tag:gpu",
	"mac:02:00:00:00:01:*",
	"web-00*",
	"workflow:running tag:rack3",
	`!state:ready hostname:"web-0*"`,
}

// benchConsole runs the console's benchmarks: console.page and
// console.events, then console.sse.
func benchConsole(ctx context.Context, log *slog.Logger, d time.Duration) error {
	if err := benchConsolePage(ctx, log, d); err != nil {
		return err
	}
	return benchConsoleSSE(ctx, log, d)
}

// benchConsolePage measures the server time of the console's machines
// page: GET /v1/machines?q= through machinequery on a site of
// pageMachines machines (each with a lease and a workflow) and
// pageEvents events. The store is filled directly, as the state machine
// would leave it: the benchmark measures reads. Each of pageRounds
// rounds makes pageRequests searches through the API's handler (its
// authentication, search and JSON encoding); the line has the median of
// the rounds' p50 and p99 and spread_pct, the spread of the rounds' p99
// around their median.
func benchConsolePage(ctx context.Context, log *slog.Logger, _ time.Duration) error {
	dir, err := os.MkdirTemp("", "outpost-bench-console-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db, err := store.Open(filepath.Join(dir, "store.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	token, err := fillConsoleSite(db, time.Now())
	if err != nil {
		return fmt.Errorf("fill the site: %w", err)
	}
	h := api.New(api.Config{Store: db, Log: log}).Handler()
	var p50s, p99s []float64
	for range pageRounds {
		lats, err := searchRound(ctx, h, token)
		if err != nil {
			return err
		}
		p50s = append(p50s, ms(lats[len(lats)/2]))
		p99s = append(p99s, ms(lats[len(lats)*99/100]))
	}
	p99 := median(p99s)
	fmt.Printf("BENCH console.page machines=%d events=%d p50_ms=%.2f p99_ms=%.2f spread_pct=%.0f\n",
		pageMachines, pageEvents, median(p50s), p99, 100*(slices.Max(p99s)-slices.Min(p99s))/p99)
	return benchConsoleEvents(ctx, db, token, log)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// searchRound makes pageRequests searches and returns their server
// times, sorted.
func searchRound(ctx context.Context, h http.Handler, token string) ([]time.Duration, error) {
	lats := make([]time.Duration, 0, pageRequests)
	for i := range pageRequests {
		q := pageQueries[i%len(pageQueries)]
		req := httptest.NewRequestWithContext(ctx, "GET", "/v1/machines?q="+url.QueryEscape(q), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		lats = append(lats, time.Since(start))
		if rec.Code != http.StatusOK {
			body, _ := io.ReadAll(rec.Body)
			return nil, fmt.Errorf("search %q: %d %s", q, rec.Code, body)
		}
	}
	slices.Sort(lats)
	return lats, nil
}

// fillConsoleSite stores the benchmark's site and an admin token for it,
// and returns the token.
func fillConsoleSite(db *store.DB, now time.Time) (string, error) {
	token, rec := api.NewToken("bench")
	running, err := runningWorkflow(now)
	if err != nil {
		return "", err
	}
	states := []store.MachineState{store.StateReady, store.StateProvisioning, store.StateProvisioned, store.StateFailed}
	return token, db.Update(func(tx *store.Tx) error {
		w := store.Write{Index: 1, Time: now}
		if err := tx.UnsafePut(rec, w); err != nil {
			return err
		}
		for i := range pageMachines {
			if err := putConsoleMachine(tx, w, i, states[i%len(states)], running); err != nil {
				return err
			}
		}
		for i := range pageEvents {
			e := &store.Event{MachineID: fmt.Sprintf("m%04d", i%pageMachines), Kind: "workflow.action", Message: "action progressed"}
			if err := tx.UnsafeAppendEvent(e, uint64(2+i), now); err != nil {
				return err
			}
		}
		return nil
	})
}

// putConsoleMachine stores machine i with a current lease and a workflow.
func putConsoleMachine(tx *store.Tx, w store.Write, i int, state store.MachineState, st *workflow.State) error {
	id, mac := fmt.Sprintf("m%04d", i), fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff)
	tags := []string{fmt.Sprintf("rack%d", i%8)}
	if i%10 == 0 {
		tags = append(tags, "gpu")
	}
	m := &store.Machine{ID: id, Hostname: fmt.Sprintf("web-%04d", i), Arch: "x86_64", State: state, Tags: tags,
		Workflow: "w" + id, Interfaces: []store.Interface{{Name: "eno1", MAC: mac, Boot: true}}}
	if state == store.StateFailed {
		m.Reason = "image checksum mismatch"
	}
	if err := tx.UnsafePutMachine(m, w); err != nil {
		return err
	}
	l := &store.Lease{IP: fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250), MAC: mac, MachineID: id, Subnet: "lab",
		State: store.LeaseActive, Starts: w.Time, Expires: w.Time.Add(24 * time.Hour)}
	if err := tx.UnsafePutLease(l, nil, w); err != nil {
		return err
	}
	return tx.UnsafePut(&store.Workflow{ID: "w" + id, MachineID: id, Template: "install", State: st}, w)
}

// runningWorkflow is the state of a workflow whose first action runs.
func runningWorkflow(now time.Time) (*workflow.State, error) {
	plan, err := workflow.NewPlan([]workflow.Action{
		{Name: "wipe", Type: "disk.wipe", Args: map[string]string{"device": "/dev/sda"}},
		{Name: "reboot", Type: "reboot", Needs: []string{"wipe"}},
	}, actions.Required())
	if err != nil {
		return nil, err
	}
	st, _, err := workflow.Start(workflow.NewState(plan, time.Time{}), "wipe", 1, now)
	return &st, err
}
