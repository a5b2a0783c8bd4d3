package app

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/central/internal/centraltest"
	"github.com/outposthq/outpost/central/internal/config"
	"github.com/outposthq/outpost/internal/conf"
	"github.com/outposthq/outpost/internal/httpserve/servetest"
)

// Slow clients are cut off within central's configured deadlines while
// normal clients are served: a body trickled without a token is answered
// at once and the connection closed (it used to be held for as long as
// the client trickled); one trickled with a token is cut by the body
// deadline (408).
func TestSlowClientsAreCut(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir, cfg.Addr = filepath.Join(t.TempDir(), "data"), "127.0.0.1:0"
	cfg.Limits.BodyTimeout = conf.Duration(time.Second)
	logs := &centraltest.Buffer{}
	r := start(t, cfg, logs)
	defer r.stop()
	token := r.waitAdminToken(t, cfg)
	u, _ := url.Parse(r.url)

	anon := servetest.Trickle(t, "without a token", u.Host, "POST", "/v1/sites", "", 1<<10)
	authed := servetest.Trickle(t, "with a token", u.Host, "POST", "/v1/sites", "Authorization: Bearer "+token+"\r\n", 1<<20)
	req, _ := http.NewRequestWithContext(t.Context(), "POST", r.url+"/v1/sites", strings.NewReader(`{"id":"fra-1","name":"Frankfurt 1"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a normal client meanwhile: %d", resp.StatusCode)
	}

	end := time.Now().Add(waitTimeout)
	for s, want := range map[*servetest.Slow]int{anon: http.StatusUnauthorized, authed: http.StatusRequestTimeout} {
		code, body, closed, err := s.Answer(end)
		if err != nil || code != want || !closed {
			t.Errorf("%s: %d %s (closed: %v; %v), want %d and the connection closed", s.Name, code, body, closed, err, want)
		}
	}
}
