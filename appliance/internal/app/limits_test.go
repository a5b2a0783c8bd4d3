package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/appliance/internal/apptest"
	"github.com/outposthq/outpost/appliance/internal/config"
	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve"
	"github.com/outposthq/outpost/internal/httpserve/servetest"
	"github.com/outposthq/outpost/internal/testwait"
)

// startLimited runs an appliance with a boot service, its deadlines
// shortened to deadline, and returns its config and admin token.
func startLimited(t *testing.T, deadline time.Duration) (*config.Config, string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.BootAddr = apptest.FreeAddr(t)
	cfg.BootURL = "http://" + cfg.BootAddr
	for _, l := range []*httpserve.Limits{&cfg.APILimits, &cfg.BootLimits} {
		l.BodyTimeout, l.WriteTimeout = conf.Duration(deadline), conf.Duration(deadline)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	out := &apptest.SyncBuffer{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, log, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	token := waitOut(t, out, done, regexp.MustCompile(`admin token \(shown once; also saved to .*\):\n  (\S+)\n`))[1]
	return cfg, token
}

// Slow clients are cut off within the configured deadlines on every HTTP
// port of the appliance, while normal clients are served: a body
// trickled without a credential is answered at once and the connection
// closed (it used to be held for as long as the client trickled); one
// trickled with a token is cut by the body deadline (408); a client that
// stops reading an artifact is cut by the write deadline.
func TestSlowClientsAreCut(t *testing.T) {
	const deadline = time.Second
	cfg, token := startLimited(t, deadline)
	big := filepath.Join(cfg.ArtifactDir, "big.img")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, 512<<20); err != nil { // more than any socket buffers hold
		t.Fatal(err)
	}

	api, boot := cfg.APIAddr, cfg.BootAddr
	slow := []struct {
		c    *servetest.Slow
		want int
	}{
		{c: servetest.Trickle(t, "api without a token", api, "PUT", "/v1/machines/m1", "", 1<<10), want: http.StatusUnauthorized},
		{c: servetest.Trickle(t, "api with a token", api, "PUT", "/v1/machines/m1", "Authorization: Bearer "+token+"\r\n", 1<<20), want: http.StatusRequestTimeout},
		{c: servetest.Trickle(t, "agent api without a credential", boot, "POST", "/agent/v1/report", "", 1<<10), want: http.StatusUnauthorized},
		{c: servetest.Trickle(t, "agent api with a bad credential", boot, "POST", "/agent/v1/report", "Authorization: Bearer w1.nope\r\n", 1<<10), want: http.StatusUnauthorized},
		{c: servetest.Trickle(t, "metadata token", boot, "PUT", "/latest/api/token", "", 1<<10), want: http.StatusBadRequest},
		{c: servetest.Trickle(t, "ipxe script", boot, "GET", "/ipxe/boot.ipxe?mac=02:00:00:00:00:aa", "", 1<<10), want: http.StatusOK},
	}
	unread, err := net.Dial("tcp", boot)
	if err != nil {
		t.Fatal(err)
	}
	defer unread.Close()
	fmt.Fprintf(unread, "GET /artifacts/big.img HTTP/1.1\r\nHost: %s\r\n\r\n", boot)

	// Normal clients meanwhile.
	mustGet(t, "http://"+api+"/v1/machines", token, http.StatusOK)
	mustGet(t, "http://"+boot+"/healthz", "", http.StatusOK)

	end := time.Now().Add(waitTimeout)
	for _, s := range slow {
		code, _, closed, err := s.c.Answer(end)
		if err != nil || code != s.want || !closed {
			t.Errorf("%s: answered %d (connection closed: %v; %v), want %d and the connection closed", s.c.Name, code, closed, err, s.want)
		}
	}
	waitMetric(t, "http://"+api+"/metrics", `outpost_http_deadline_cuts_total{server="boot",what="write"}`, 1)
	// The artifact's reader was cut: it gets less than the whole file.
	unread.SetReadDeadline(end)
	resp, err := http.ReadResponse(bufio.NewReader(unread), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= resp.ContentLength {
		t.Errorf("the unread artifact: %d of %d bytes, then %v; want it cut short", n, resp.ContentLength, err)
	}
	mustGet(t, "http://"+boot+"/artifacts/big.img", "", http.StatusOK)
}

func mustGet(t *testing.T, url, token string, want int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if strings.HasSuffix(url, ".img") {
		req.Header.Set("Range", "bytes=0-1023")
		want = http.StatusPartialContent
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, resp.StatusCode, want)
	}
}

// waitMetric waits until the metric's value at url is at least want.
func waitMetric(t *testing.T, url, metric string, want float64) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("%s to reach %v", metric, want), waitTimeout, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, metric+" "); ok {
				if f, _ := strconv.ParseFloat(v, 64); f >= want {
					return true
				}
			}
		}
		return false
	})
}
