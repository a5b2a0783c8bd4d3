// Package webuitest checks what a console serves: that no page or asset
// loads anything from outside the server, and that every vendored file
// is recorded with its version and sum; its Client signs in and sends
// a console's requests as a browser would.
package webuitest

import (
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/outposthq/outpost/internal/webui"
)

// jsNonRequests are the absolute URLs the vendored scripts hold that are
// no request: XML namespaces and a link in an error message.
var jsNonRequests = map[string]bool{
	"http://www.w3.org/1999/xhtml": true, "http://www.w3.org/2000/svg": true,
	"https://developer.mozilla.org/en-US/docs/Web/Security/Secure_Contexts": true,
}

// CheckPage checks every URL attribute of a page, and that it has no
// inline script or style element, and returns its local URLs' paths. A
// link to another server is allowed only as <a rel="external">, which
// the browser follows when clicked and never loads by itself (central's
// portal links to a site's console so).
func CheckPage(t testing.TB, page, body string) []string {
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
			if n.Data == "a" && a.Key == "href" && external(n) && err == nil && (u.Scheme == "https" || u.Scheme == "http") {
				continue
			}
			if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(a.Val, "//") {
				t.Errorf("%s: <%s %s=%q> leaves the server", page, n.Data, a.Key, a.Val)
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

// external reports whether an element is marked rel="external".
func external(n *html.Node) bool {
	for _, a := range n.Attr {
		if a.Key == "rel" && slices.Contains(strings.Fields(a.Val), "external") {
			return true
		}
	}
	return false
}

var (
	cssURL  = regexp.MustCompile(`url\(\s*['"]?([^'")]+)`)
	cssImp  = regexp.MustCompile(`@import`)
	absURL  = regexp.MustCompile(`(?:https?:)?//[a-zA-Z0-9.-]+\.[a-z]{2,}[^\s"'` + "`" + `)]*`)
	jsAbsRE = regexp.MustCompile(`https?://[^\s"'` + "`" + `)]+`)
)

// CheckAsset finds no load from elsewhere in a stylesheet or script.
func CheckAsset(t testing.TB, name, body string) {
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

// CheckVersions checks that every file of the directory dir of fsys is
// listed in dir/VERSIONS with its package, version and sha256, as
// scripts/vendor-js.sh writes and checks them.
func CheckVersions(t testing.TB, fsys fs.FS, dir string) {
	t.Helper()
	versions, err := fs.ReadFile(fsys, path.Join(dir, "VERSIONS"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := fs.Glob(fsys, path.Join(dir, "*"))
	if len(files) < 2 {
		t.Fatalf("%s holds no vendored file", dir)
	}
	for _, f := range files {
		name := path.Base(f)
		if name != "VERSIONS" && !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+` \S+@\S+ \S+ sha256:[0-9a-f]{64}$`).Match(versions) {
			t.Errorf("%s is not in VERSIONS with its package, version and sha256", name)
		}
	}
}

// Client sends a console's requests as a browser would, following no
// redirect.
type Client struct {
	URL  string
	HTTP *http.Client
}

// Do sends a request with a form (nil: none), headers and cookies, and
// returns the answer with its body read.
func (c Client) Do(t testing.TB, method, path string, form url.Values, hdr map[string]string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, c.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	for _, k := range cookies {
		req.AddCookie(k)
	}
	client := *c.HTTP
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Origin is the header of a request from the console's own pages.
func (c Client) Origin() map[string]string { return map[string]string{"Origin": c.URL} }

// SignIn signs in with token and returns the session cookie and the
// session's CSRF token, read from the page at path.
func (c Client) SignIn(t testing.TB, token, path string) (*http.Cookie, string) {
	t.Helper()
	resp, body := c.Do(t, http.MethodPost, "/signin", url.Values{"token": {token}}, c.Origin())
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", resp.StatusCode, body)
	}
	var cookie *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == webui.CookieName {
			cookie = k
		}
	}
	if cookie == nil {
		t.Fatal("sign in set no session cookie")
	}
	_, page := c.Do(t, http.MethodGet, path, nil, nil, cookie)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return cookie, m[1]
}
