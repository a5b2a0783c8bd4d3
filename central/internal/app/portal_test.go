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
	"github.com/outposthq/outpost/internal/webui/webuitest"
)

// TestPortalServed: centrald serves the portal on its API address in
// front of the API: the sign-in page at /, a session from central's
// admin token (sealed under central's key), the catalogue's page from
// central's store, the fleet overview from the store's fleet model; the
// API and its probes keep their paths.
func TestPortalServed(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir, cfg.Addr = filepath.Join(dir, "data"), "127.0.0.1:0"
	r := start(t, cfg, &centraltest.Buffer{})
	defer r.stop()
	token := r.waitAdminToken(t, cfg)
	c := webuitest.Client{URL: r.url, HTTP: &http.Client{Timeout: 10 * time.Second}}

	resp, body := c.Do(t, http.MethodGet, "/", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-test="signin-form"`) {
		t.Fatalf("GET /: %d\n%s", resp.StatusCode, body)
	}
	cookie, _ := c.SignIn(t, token, "/images")
	resp, body = c.Do(t, http.MethodGet, "/images", nil, nil, cookie)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-test="catalogue-table"`) || !strings.Contains(body, "admin (admin)") {
		t.Errorf("GET /images: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := c.Do(t, http.MethodGet, "/fleet", nil, nil, cookie); resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-test="sites-table"`) {
		t.Errorf("GET /fleet: %d, want 200 with the sites' table\n%s", resp.StatusCode, body)
	}
	if resp, _ := c.Do(t, http.MethodGet, "/healthz", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %d", resp.StatusCode)
	}
	resp, body = c.Do(t, http.MethodGet, "/v1/sites", nil, map[string]string{"Authorization": "Bearer " + token})
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET /v1/sites: %d %s", resp.StatusCode, body)
	}
	// A session is not a bearer token: the API's other routes refuse it.
	if resp, _ := c.Do(t, http.MethodGet, "/v1/sites", nil, nil, cookie); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/sites with a session: %d, want 401", resp.StatusCode)
	}
	if resp, _ := c.Do(t, http.MethodPost, "/signin", url.Values{"token": {token}}, map[string]string{"Origin": "http://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a sign-in from another origin: %d, want 403", resp.StatusCode)
	}
}
