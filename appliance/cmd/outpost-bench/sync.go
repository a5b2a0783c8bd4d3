package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// syncEvents is how many events sync.catchup records while the link is
// down.
const syncEvents = 100000

// benchSync runs sync.catchup, on one central node and on three
// (sync.sites is a benchmark of its own).
func benchSync(ctx context.Context, log *slog.Logger, d time.Duration) error {
	centrald, applianced, remove, err := buildDaemons(ctx, "sync")
	if err != nil {
		return err
	}
	defer remove()
	for _, nodes := range []int{1, 3} {
		if err := benchSyncCatchup(ctx, log, centrald, applianced, nodes); err != nil {
			return fmt.Errorf("sync.catchup (%d central nodes): %w", nodes, err)
		}
	}
	return nil
}

// buildDaemons builds centrald and applianced into a new directory
// named for bench; remove removes it.
func buildDaemons(ctx context.Context, bench string) (centrald, applianced string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "outpost-bench-"+bench+"-")
	if err != nil {
		return "", "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	if centrald, err = goBuild(ctx, dir, "centrald", "./central/cmd/centrald"); err == nil {
		applianced, err = buildApplianced(ctx, dir)
	}
	if err != nil {
		remove()
		return "", "", nil, err
	}
	return centrald, applianced, remove, nil
}

// goBuild builds the module's package pkg into dir/name, with flags
// added to go build's (-tags pprof).
func goBuild(ctx context.Context, dir, name, pkg string, flags ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("build %s: run from inside the outpost module (go env GOMOD: %q, %v)", name, gomod, err)
	}
	return goBuildIn(ctx, filepath.Dir(gomod), dir, name, pkg, flags...)
}

// goBuildIn builds package pkg of the module whose root is src into
// dir/name (goBuild's, from another checkout of the module).
func goBuildIn(ctx context.Context, src, dir, name, pkg string, flags ...string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", slices.Concat([]string{"build", "-o", bin}, flags, []string{pkg})...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// benchSyncCatchup records syncEvents events at a single-node appliance
// whose link to central is down (a fault proxy refusing connections),
// then heals the link: seconds is from the heal until central has stored
// the site's last event. It includes the wait for the appliance's next
// connection attempt, whose backoff grew while the link was down. With
// nodes > 1 central is a Raft cluster of that many nodes (the site talks
// to the bootstrap node, its leader), and the line is
// sync.catchup.replicated.
func benchSyncCatchup(ctx context.Context, log *slog.Logger, centrald, applianced string, nodes int) error {
	var line string
	r := lab.NewRunner(ctx, "bench-sync-catchup", discardLog{log})
	err := r.Run(func(t lab.T) {
		cen := startCentral(t, centrald, nodes)
		const site = "catchup"
		cred := cen.createSite(t, site)
		credFile := filepath.Join(t.TempDir(), "site.credential")
		if err := os.WriteFile(credFile, []byte(cred+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		proxy := lab.StartFaultProxy(t, "127.0.0.1:0", cen.addr)
		proxy.SetMode(lab.Refuse)
		app := startSyncAppliance(t, applianced, "-central-url", "http://"+proxy.Addr, "-insecure-central", // a lab on loopback
			"-site-id", site, "-site-credential-file", credFile)

		recStart := time.Now()
		recordEvents(t, app, syncEvents, 64)
		var page struct {
			LastSeq uint64 `json:"last_seq"`
		}
		if err := app.do(ctx, "GET", "/v1/events?limit=1", nil, &page); err != nil {
			t.Fatal(err)
		}
		total := page.LastSeq
		log.Info("sync.catchup: recorded", "events", total, "seconds", time.Since(recStart).Seconds())

		start := time.Now()
		proxy.SetMode(lab.Pass)
		var connected time.Duration
		err := pollEvery(ctx, 50*time.Millisecond, 5*time.Minute, func() error {
			var s struct {
				Sync struct {
					Connected bool   `json:"connected"`
					StoredSeq uint64 `json:"stored_seq"`
				} `json:"sync"`
			}
			if err := cen.do(ctx, "GET", "/v1/sites/"+site, nil, &s); err != nil {
				return err
			}
			if connected == 0 && (s.Sync.Connected || s.Sync.StoredSeq > 0) {
				connected = time.Since(start)
			}
			if s.Sync.StoredSeq < total {
				return fmt.Errorf("central stored %d of %d", s.Sync.StoredSeq, total)
			}
			return nil
		})
		secs := time.Since(start).Seconds()
		if err != nil {
			t.Fatalf("catch-up: %v", err)
		}
		n, err := cen.checkDense(ctx, site)
		if err != nil {
			t.Fatal(err)
		}
		if n < total {
			t.Fatalf("central holds %d events, want %d", n, total)
		}
		fmt.Fprintf(os.Stderr, "sync.catchup: %d events at the site; central first saw the site %.1fs after the heal, had them all after %.1fs\n",
			total, connected.Seconds(), secs)
		line = fmt.Sprintf("BENCH sync.catchup events=%d seconds=%.1f", syncEvents, secs)
		if nodes > 1 {
			line = fmt.Sprintf("BENCH sync.catchup.replicated nodes=%d events=%d seconds=%.1f", nodes, syncEvents, secs)
		}
	})
	if err != nil {
		return err
	}
	fmt.Println(line)
	return nil
}

// recordEvents posts n events to app from clients concurrent clients.
func recordEvents(t lab.T, app *httpAPI, n, clients int) {
	var next, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				e := store.Event{Kind: "bench.offline", Message: fmt.Sprintf("offline event %06d", i)}
				if err := app.do(t.Context(), "POST", "/v1/events", e, nil); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d events were not recorded: %v", f, n, firstErr.Load())
	}
}

// httpAPI is a JSON API with a bearer token: centrald's or applianced's.
type httpAPI struct {
	url   string
	token string
	http  *http.Client
}

func newHTTPAPI(url string) *httpAPI {
	return &httpAPI{url: url, http: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}}}
}

// do calls the API and decodes a 2xx answer into out.
func (a *httpAPI) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// centralProc is a centrald process on loopback.
type centralProc struct {
	*httpAPI
	addr string
	proc *lab.Process
}

// startCentral starts centrald with its data in a new directory and waits
// for its admin token and its health check. With nodes > 1 it is the
// bootstrap node of a Raft cluster the others join, and it returns once
// it leads them all. env is added to the first node's environment.
func startCentral(t lab.T, bin string, nodes int, env ...string) *centralProc {
	data := filepath.Join(t.TempDir(), "central")
	addr := freeLoopback(t)
	c := &centralProc{httpAPI: newHTTPAPI("http://" + addr), addr: addr}
	args := []string{bin, "-data-dir", data, "-addr", addr, "-log-level", "warn"}
	if nodes > 1 {
		args = append(args, "-raft-addr", freeLoopback(t), "-node-id", "c1")
	}
	c.proc = lab.StartProcess(t, lab.ProcessConfig{Name: "centrald", Args: args, Env: env})
	c.token = waitToken(t, c.proc, filepath.Join(data, "admin.token"))
	err := pollEvery(t.Context(), 50*time.Millisecond, time.Minute, func() error {
		return c.do(t.Context(), "GET", "/healthz", nil, nil)
	})
	if err != nil {
		t.Fatalf("centrald: %v", err)
	}
	if nodes <= 1 {
		return c
	}
	tokenFile := filepath.Join(t.TempDir(), "join.token")
	if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= nodes; i++ {
		lab.StartProcess(t, lab.ProcessConfig{Name: fmt.Sprintf("centrald-c%d", i), Args: []string{
			bin, "-data-dir", filepath.Join(t.TempDir(), "central"), "-addr", freeLoopback(t), "-log-level", "warn",
			"-raft-addr", freeLoopback(t), "-node-id", fmt.Sprintf("c%d", i), "-join", c.url, "-join-token-file", tokenFile}})
	}
	err = pollEvery(t.Context(), 100*time.Millisecond, time.Minute, func() error {
		var st struct {
			State  string   `json:"state"`
			Voters []string `json:"voters"`
		}
		if err := c.do(t.Context(), "GET", "/v1/cluster", nil, &st); err != nil {
			return err
		}
		if st.State != "Leader" || len(st.Voters) != nodes {
			return fmt.Errorf("central c1 is %s with voters %v", st.State, st.Voters)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("central cluster: %v", err)
	}
	return c
}

// createSite creates site at central and returns its credential.
func (c *centralProc) createSite(t lab.T, site string) string {
	var created struct {
		Credential string `json:"credential"`
	}
	if err := c.do(t.Context(), "POST", "/v1/sites", map[string]string{"id": site, "name": site}, &created); err != nil {
		t.Fatal(err)
	}
	return created.Credential
}

// checkDense reads every event central stored for site, in pages, and
// checks that their sequences run densely from 1. It returns how many
// there are.
func (c *centralProc) checkDense(ctx context.Context, site string) (uint64, error) {
	var n uint64
	for {
		var page struct {
			Events []struct {
				Seq uint64 `json:"seq"`
			} `json:"events"`
		}
		if err := c.do(ctx, "GET", fmt.Sprintf("/v1/sites/%s/events?since=%d&limit=10000", site, n), nil, &page); err != nil {
			return n, err
		}
		if len(page.Events) == 0 {
			return n, nil
		}
		for _, e := range page.Events {
			if e.Seq != n+1 {
				return n, fmt.Errorf("central's event after seq %d has seq %d: not dense", n, e.Seq)
			}
			n++
		}
	}
}

// startSyncAppliance starts a single-node applianced on loopback, with
// args added, and waits until it leads.
func startSyncAppliance(t lab.T, bin string, args ...string) *httpAPI {
	app, _ := startApplianceProc(t, bin, args...)
	return app
}

// startApplianceProc is startSyncAppliance, with the process.
func startApplianceProc(t lab.T, bin string, args ...string) (*httpAPI, *lab.Process) {
	data := filepath.Join(t.TempDir(), "appliance")
	api := freeLoopback(t)
	app := newHTTPAPI("http://" + api)
	p := lab.StartProcess(t, lab.ProcessConfig{Name: "applianced", Args: append([]string{
		bin, "-id", "n1", "-data-dir", data, "-api-addr", api, "-raft-addr", freeLoopback(t),
		"-log-level", "warn"}, args...)})
	app.token = waitToken(t, p, filepath.Join(data, "admin.token"))
	err := pollEvery(t.Context(), 50*time.Millisecond, time.Minute, func() error {
		var st struct {
			LeaderID string `json:"leader_id"`
		}
		if err := app.do(t.Context(), "GET", "/v1/cluster", nil, &st); err != nil {
			return err
		}
		if st.LeaderID == "" {
			return fmt.Errorf("no leader yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("applianced: %v", err)
	}
	return app, p
}

// waitToken waits for p to write its admin token to path.
func waitToken(t lab.T, p *lab.Process, path string) string {
	var token string
	err := pollEvery(t.Context(), 50*time.Millisecond, time.Minute, func() error {
		select {
		case <-p.Exited():
			return fmt.Errorf("%s exited: %v", p.Name, p.Err())
		default:
		}
		raw, err := os.ReadFile(path)
		if err != nil || !bytes.HasSuffix(raw, []byte("\n")) {
			return fmt.Errorf("no admin token in %s yet (%v)", path, err)
		}
		token = strings.TrimSpace(string(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// freeLoopback returns a loopback address with a port free a moment ago.
func freeLoopback(t lab.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// pollEvery calls cond every interval until it returns nil, or returns
// its last error after timeout.
func pollEvery(ctx context.Context, interval, timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}
