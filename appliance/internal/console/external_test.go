package console_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/outposthq/outpost/appliance/internal/console"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/webui/webuitest"
)

// TestNoExternalURL parses every page and every asset the console serves
// and finds no URL outside the appliance: every src, href and action is
// a path of its own, CSS loads nothing from elsewhere, and the scripts
// hold no absolute URL but the namespaces above.
func TestNoExternalURL(t *testing.T) {
	e := start(t, false)
	addMachine(t, e, "m1")
	if _, err := e.n.Site.RecordEvent(t.Context(), store.Event{Kind: "note", MachineID: "m1", Message: "see https://example.com"}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.signIn(t, e.token(t, "op", "operator", "1h"))
	var assets []string
	for _, p := range []string{"/", "/site", "/machines", "/machines/m1", "/subnets", "/events", "/discovered", "/no-such-page"} {
		resp, body := e.do(t, http.MethodGet, p, nil, nil, c)
		if p == "/" {
			_, body = e.do(t, http.MethodGet, p, nil, nil) // the sign-in page
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("%s: Content-Security-Policy %q", p, csp)
		}
		assets = append(assets, webuitest.CheckPage(t, p, body)...)
	}
	if len(assets) == 0 {
		t.Fatal("the pages load no asset: the test reads nothing")
	}
	seen := map[string]bool{}
	for _, a := range assets {
		if seen[a] || !strings.HasPrefix(a, "/assets/") {
			continue
		}
		seen[a] = true
		resp, body := e.do(t, http.MethodGet, a, nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", a, resp.StatusCode)
		}
		webuitest.CheckAsset(t, a, body)
	}
	for _, want := range []string{"/assets/vendor/htmx.min.js", "/assets/vendor/xterm.js", "/assets/vendor/xterm.css", "/assets/outpost.css", "/assets/outpost.js"} {
		if !seen[want] {
			t.Errorf("no page loads %s", want)
		}
	}
}

// TestVendoredVersions: every vendored file is listed in VERSIONS, which
// scripts/vendor-js.sh writes and checks.
func TestVendoredVersions(t *testing.T) {
	webuitest.CheckVersions(t, console.Files(), "assets/vendor")
}
