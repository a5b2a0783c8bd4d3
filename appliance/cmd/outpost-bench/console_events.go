package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/appliance/internal/console"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/seal"
)

// eventsPages are the events pages a technician opens: the newest, one
// filtered, and one further back.
var eventsPages = []string{"/events", "/events?kind=workflow", "/events?machine=m0042", "/events?before=10000"}

// oneNode is the status the console shows of the benchmark's one node.
type oneNode struct{}

func (oneNode) Status() site.Status { return site.Status{ID: "bench", LeaderID: "bench"} }

// benchConsoleEvents measures the server time of the console's events
// page on the console.page site (pageEvents events): pageRounds rounds of
// pageRequests renders through the console's handler with a session
// cookie, cycling through eventsPages.
func benchConsoleEvents(ctx context.Context, db *store.DB, token string, log *slog.Logger) error {
	key, err := seal.Generate()
	if err != nil {
		return err
	}
	web, err := console.New(console.Config{Store: db, Cluster: oneNode{}, SiteKey: key, Lookup: api.TokenLookup(db), Log: log})
	if err != nil {
		return err
	}
	h := web.Handler()
	req := httptest.NewRequestWithContext(ctx, "POST", "/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://example.com")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cookies) == 0 {
		return fmt.Errorf("sign in: %d %s", rec.Code, rec.Body)
	}
	var p50s, p99s []float64
	for range pageRounds {
		lats := make([]time.Duration, 0, pageRequests)
		for i := range pageRequests {
			req := httptest.NewRequestWithContext(ctx, "GET", eventsPages[i%len(eventsPages)], nil)
			req.AddCookie(cookies[0])
			rec := httptest.NewRecorder()
			start := time.Now()
			h.ServeHTTP(rec, req)
			lats = append(lats, time.Since(start))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `data-test="event-row"`) {
				return fmt.Errorf("events page %s: %d, no events", req.URL, rec.Code)
			}
		}
		slices.Sort(lats)
		p50s, p99s = append(p50s, ms(lats[len(lats)/2])), append(p99s, ms(lats[len(lats)*99/100]))
	}
	p99 := median(p99s)
	fmt.Printf("BENCH console.events events=%d p50_ms=%.2f p99_ms=%.2f spread_pct=%.0f\n",
		pageEvents, median(p50s), p99, 100*(slices.Max(p99s)-slices.Min(p99s))/p99)
	return nil
}
