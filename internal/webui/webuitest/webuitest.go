// Package webuitest checks what a console serves: that no page or asset
// loads anything from outside the server, and that every vendored file
// is recorded with its version and sum.
package webuitest

import (
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// jsNonRequests are the absolute URLs the vendored scripts hold that are
// no request: XML namespaces and a link in an error message.
var jsNonRequests = map[string]bool{
	"http://www.w3.org/1999/xhtml": true, "http://www.w3.org/2000/svg": true,
	"https://developer.mozilla.org/en-US/docs/Web/Security/Secure_Contexts": true,
}

// CheckPage checks every URL attribute of a page, and that it has no
// inline script or style element, and returns its local URLs' paths.
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
