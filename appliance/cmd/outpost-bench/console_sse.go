package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
)

// The console.sse benchmark: sseClients viewers of the console's event
// stream, each with its own session, while events are recorded at
// sseRate per second.
const (
	sseClients = 200
	sseRate    = 100
	sseRuns    = 3
)

// benchConsoleSSE runs sseRuns runs of sseLoad against a fresh applianced
// each, and prints the medians: the p99 of the delivery latency (from the
// event's commit time, stamped by the proposer, to a viewer's receipt) and
// the growth of the process's resident memory over the run, with
// spread_pct, the spread of the runs' p99 around their median.
func benchConsoleSSE(ctx context.Context, log *slog.Logger, d time.Duration) error {
	dir, err := os.MkdirTemp("", "outpost-bench-sse-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := buildApplianced(ctx, dir)
	if err != nil {
		return err
	}
	var p99s, growths []float64
	for range sseRuns {
		var p99, growth float64
		r := lab.NewRunner(ctx, "bench-console-sse", discardLog{log})
		if err := r.Run(func(t lab.T) { p99, growth = sseLoad(t, bin, d) }); err != nil {
			return err
		}
		p99s, growths = append(p99s, p99), append(growths, growth)
	}
	p99 := median(p99s)
	fmt.Printf("BENCH console.sse clients=%d delivery_p99_ms=%.1f rss_growth_mb=%.1f spread_pct=%.0f\n",
		sseClients, p99, median(growths), 100*(slices.Max(p99s)-slices.Min(p99s))/max(p99, 1))
	return nil
}

// sseLoad is one run: it signs sseClients sessions in, opens their event
// streams, records events at sseRate for d, and returns the delivery p99
// in ms and the RSS growth in MB (the peak, sampled, over the baseline
// before the viewers connected).
func sseLoad(t lab.T, bin string, d time.Duration) (p99, growthMB float64) {
	app, proc := startApplianceProc(t, bin)
	var tok httpapi.TokenCreated
	if err := app.do(t.Context(), "POST", "/v1/tokens", map[string]string{"name": "viewer", "role": "viewer"}, &tok); err != nil {
		t.Fatal(err)
	}
	var last struct {
		LastSeq uint64 `json:"last_seq"`
	}
	if err := app.do(t.Context(), "GET", "/v1/events?limit=1", nil, &last); err != nil {
		t.Fatal(err)
	}
	base := procRSS(t, proc.Pid())
	n := int(d.Seconds() * sseRate)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	v := &viewers{want: n, done: make(chan struct{})}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: sseClients}}
	for range sseClients {
		cookie := signIn(t, client, app.url, tok.Token)
		v.wg.Add(1)
		go v.follow(ctx, client, app.url, cookie, last.LastSeq)
	}
	v.waitOpen(t)
	peak := base
	tick := time.NewTicker(time.Second / sseRate)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		e := store.Event{Kind: "bench.console", Message: fmt.Sprintf("console event %06d", i)}
		if err := app.do(t.Context(), "POST", "/v1/events", e, nil); err != nil {
			t.Fatal(err)
		}
		if i%sseRate == 0 {
			peak = max(peak, procRSS(t, proc.Pid()))
		}
	}
	select {
	case <-v.done:
	case <-time.After(time.Minute):
		t.Fatalf("the viewers did not receive all %d events: %s", n, v.progress())
	}
	peak = max(peak, procRSS(t, proc.Pid()))
	cancel()
	v.wg.Wait()
	if v.err != nil {
		t.Fatal(v.err)
	}
	slices.Sort(v.lats)
	return ms(v.lats[len(v.lats)*99/100]), peak - base
}

// signIn signs a session in with token and returns its cookie.
func signIn(t lab.T, c *http.Client, base, token string) *http.Cookie {
	req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	res, err := c.Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for _, k := range res.Cookies() {
		if k.Name == "outpost_session" {
			return k
		}
	}
	t.Fatalf("sign in: %d, no session cookie", res.StatusCode)
	return nil
}

// viewers are the event streams' readers and what they measured.
type viewers struct {
	want int
	wg   sync.WaitGroup
	mu   sync.Mutex
	open int
	got  int // events received, all viewers
	lats []time.Duration
	err  error
	done chan struct{}
}

func (v *viewers) progress() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return fmt.Sprintf("%d streams open, %d of %d deliveries", v.open, v.got, v.want*sseClients)
}

// waitOpen waits until every viewer's stream has answered.
func (v *viewers) waitOpen(t lab.T) {
	err := pollEvery(t.Context(), 10*time.Millisecond, time.Minute, func() error {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.err != nil {
			return v.err
		}
		if v.open < sseClients {
			return fmt.Errorf("%d of %d streams open", v.open, sseClients)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// follow reads one viewer's event stream from after seq, with the
// session's cookie, and records each bench event's delivery latency.
func (v *viewers) follow(ctx context.Context, c *http.Client, base string, cookie *http.Cookie, seq uint64) {
	defer v.wg.Done()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events/stream", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(seq, 10))
	req.AddCookie(cookie)
	res, err := c.Do(req)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("event stream: %d", res.StatusCode)
	}
	if err != nil {
		v.fail(ctx, err)
		return
	}
	defer res.Body.Close()
	v.mu.Lock()
	v.open++
	v.mu.Unlock()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var e store.Event
		if json.Unmarshal([]byte(data), &e) != nil || e.Kind != "bench.console" {
			continue
		}
		v.record(time.Since(e.Time))
	}
	v.fail(ctx, sc.Err())
}

func (v *viewers) record(lat time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.lats = append(v.lats, lat)
	if v.got++; v.got == v.want*sseClients {
		close(v.done)
	}
}

// fail records a viewer's error, unless the run is over.
func (v *viewers) fail(ctx context.Context, err error) {
	if err == nil || ctx.Err() != nil {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err == nil {
		v.err = err
	}
}

// procRSS is process pid's resident memory in MiB (rssMB), or the
// benchmark's end.
func procRSS(t lab.T, pid int) float64 {
	mb, err := rssMB(pid)
	if err != nil {
		t.Fatal(err)
	}
	return float64(mb)
}
