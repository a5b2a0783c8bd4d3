package webui

import (
	"bytes"
	"html/template"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Funcs are the template functions every console's pages have.
var Funcs = template.FuncMap{
	"since": func(now, t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return now.Sub(t).Round(time.Second).String()
	},
	"stamp": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": strings.Join,
	"list": func(s ...string) []string { return s },
}

// Pages are page templates by name ("machines" for
// templates/page_machines.html), each with the layout.
type Pages map[string]*template.Template

// ParsePages parses each templates/page_*.html of pages with
// templates/layout.html and the shared templates (signin-form, which
// calls the page's signin-hint), with Funcs and extra.
func ParsePages(pages fs.FS, extra template.FuncMap) (Pages, error) {
	fm := maps.Clone(Funcs)
	maps.Copy(fm, extra)
	layout, err := template.New("layout").Funcs(fm).ParseFS(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	if layout, err = layout.ParseFS(pages, "templates/layout.html"); err != nil {
		return nil, err
	}
	names, err := fs.Glob(pages, "templates/page_*.html")
	if err != nil {
		return nil, err
	}
	pg := Pages{}
	for _, n := range names {
		t, err := template.Must(layout.Clone()).ParseFS(pages, n)
		if err != nil {
			return nil, err
		}
		pg[strings.TrimSuffix(strings.TrimPrefix(n, "templates/page_"), ".html")] = t
	}
	return pg, nil
}

// Write renders page name's layout with v into w with status, uncached;
// a page that does not render is logged and answered 500.
func (pg Pages) Write(w http.ResponseWriter, log *slog.Logger, status int, name string, v any) {
	var b bytes.Buffer
	if err := pg[name].ExecuteTemplate(&b, "layout", v); err != nil {
		log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error; see the server's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// NotFound is the route table's last route: any path no page has, for
// anyone signed in, answered 404 with fail.
func NotFound(fail Fail) httpapi.Route {
	return httpapi.Route{Pattern: "/", Role: access.Viewer, Handler: func(w http.ResponseWriter, r *http.Request) {
		fail(w, r, http.StatusNotFound, "there is no page at "+r.URL.Path)
	}}
}

// View is what every page of a console gets: who is signed in, what
// they may do, and the page's own data. A console's view embeds it.
type View struct {
	Title string
	// Nav is the page's name, which the navigation marks current.
	Nav string
	// Signed is false on the sign-in page.
	Signed     bool
	Caller     httpapi.Caller
	CSRF       string
	CanOperate bool
	Now        time.Time
	// URL is the page's own, which its live regions reload from.
	URL string
	// Version is where the server's change stream stood when the request
	// came (SignedIn.Version): the page's stream starts after it.
	Version uint64
	Data    any
}

// NewView is the view of page name, titled title, showing data, as the
// request's session sees it at now.
func NewView(r *http.Request, now time.Time, name, title string, data any) View {
	si := SessionOf(r.Context())
	return View{Title: title, Nav: name, Signed: si.Token != "", Caller: si.Caller, CSRF: si.CSRF,
		CanOperate: si.Caller.Role.Allows(access.Operator), Now: now.UTC(), URL: r.URL.RequestURI(),
		Version: si.Version, Data: data}
}
