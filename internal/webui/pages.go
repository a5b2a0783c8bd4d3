package webui

import (
	"html/template"
	"io/fs"
	"maps"
	"strings"
	"time"
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
