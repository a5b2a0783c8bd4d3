package console_test

import (
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/outposthq/outpost/appliance/internal/console"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// jsNonRequests are the absolute URLs the vendored scripts hold that are
// no request: XML namespaces and a link in an error message.
var jsNonRequests = map[string]bool{
	"http://www.w3.org/1999/xhtml": true, "http://www.w3.org/2000/svg": true,
	"https://developer.mozilla.org/en-US/docs/Web/Security/Secure_Contexts": true,
}

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
		assets = append(assets, checkPage(t, p, body)...)
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
		checkAsset(t, a, body)
	}
	for _, want := range []string{"/assets/vendor/htmx.min.js", "/assets/vendor/xterm.js", "/assets/vendor/xterm.css", "/assets/console.css"} {
		if !seen[want] {
			t.Errorf("no page loads %s", want)
		}
	}
}

// checkPage checks every URL attribute of a page and returns its local
// ones.
func checkPage(t *testing.T, page, body string) []string {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	var local []string
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		for _, a := range n.Attr {
			switch a.Key {
			case "src", "href", "action", "hx-get", "hx-post", "formaction", "poster", "data":
			default:
				continue
			}
			u, err := url.Parse(a.Val)
			if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(a.Val, "//") {
				t.Errorf("%s: <%s %s=%q> leaves the appliance", page, n.Data, a.Key, a.Val)
				continue
			}
			local = append(local, u.Path)
		}
		if n.Data == "style" || n.Data == "script" && n.FirstChild != nil {
			t.Errorf("%s: an inline <%s>", page, n.Data)
		}
	}
	return local
}

var (
	cssURL  = regexp.MustCompile(`url\(\s*['"]?([^'")]+)`)
	cssImp  = regexp.MustCompile(`@import`)
	absURL  = regexp.MustCompile(`(?:https?:)?//[a-zA-Z0-9.-]+\.[a-z]{2,}[^\s"'` + "`" + `)]*`)
	jsAbsRE = regexp.MustCompile(`https?://[^\s"'` + "`" + `)]+`)
)

// checkAsset finds no load from elsewhere in a stylesheet or script.
func checkAsset(t *testing.T, name, body string) {
	t.Helper()
	switch {
	case strings.HasSuffix(name, ".css"):
		if cssImp.MatchString(body) {
			t.Errorf("%s imports a stylesheet", name)
		}
		for _, m := range cssURL.FindAllStringSubmatch(body, -1) {
			if u := m[1]; !strings.HasPrefix(u, "data:") && absURL.MatchString(u) {
				t.Errorf("%s loads %s", name, u)
			}
		}
	case strings.HasSuffix(name, ".js"):
		for _, u := range jsAbsRE.FindAllString(body, -1) {
			if !jsNonRequests[u] {
				t.Errorf("%s holds the URL %s", name, u)
			}
		}
	}
}

// TestVendoredVersions: every vendored file is listed in VERSIONS, which
// scripts/vendor-js.sh writes and checks.
func TestVendoredVersions(t *testing.T) {
	versions, err := fs.ReadFile(console.Files(), "assets/vendor/VERSIONS")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(console.Files(), "assets/vendor/*")
	for _, f := range files {
		name := strings.TrimPrefix(f, "assets/vendor/")
		if name != "VERSIONS" && !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+` \S+@\S+ \S+ sha256:[0-9a-f]{64}$`).Match(versions) {
			t.Errorf("%s is not in VERSIONS with its package, version and sha256", name)
		}
	}
}
