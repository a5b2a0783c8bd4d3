package console

import (
	"bytes"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
)

// pages are the page templates by name, each with the layout.
type pages map[string]*template.Template

var funcs = template.FuncMap{
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

// parsePages parses each page of templates/ with the layout.
func parsePages() (pages, error) {
	layout, err := template.New("layout").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "templates/page_*.html")
	if err != nil {
		return nil, err
	}
	pg := pages{}
	for _, n := range names {
		t, err := template.Must(layout.Clone()).ParseFS(files, n)
		if err != nil {
			return nil, err
		}
		pg[strings.TrimSuffix(strings.TrimPrefix(n, "templates/page_"), ".html")] = t
	}
	return pg, nil
}

// view is what every page gets: who is signed in, what they may do, the
// node, and the page's own data.
type view struct {
	Title string
	Nav   string
	// Signed is false on the sign-in page.
	Signed     bool
	Caller     httpapi.Caller
	CSRF       string
	CanOperate bool
	Node       string
	Leader     string
	Now        time.Time
	// URL is the page's own, which its live regions reload from.
	URL string
	// Last is the last event the page reflects (signedIn.LastSeq).
	Last uint64
	// Live names the events the page refreshes on ("" none; "all", or a
	// machine's id).
	Live string
	Data any
}

// render writes page name with data, as the request's session sees it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	si := sessionOf(r.Context())
	st := s.cfg.Cluster.Status()
	v := view{Title: title, Nav: name, Signed: si.Token != "", Caller: si.Caller, CSRF: si.CSRF,
		CanOperate: si.Caller.Role.Allows(access.Operator), Node: st.ID, Leader: st.LeaderID,
		Now: s.now().UTC(), URL: r.URL.RequestURI(), Last: si.LastSeq, Data: data}
	if name != "signin" && name != "error" {
		v.Live = "all"
	}
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error; see the appliance log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail answers with an error page saying what was wrong.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, "error", http.StatusText(status), msg)
}

// failErr answers with what a client may see of err.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	e := api.PublicError(s.log, r, err)
	s.fail(w, r, httpapi.Status(e.Code), e.Error())
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// signInPage serves the sign-in form; a browser already signed in goes
// to the site's overview.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.authenticate(r); ok {
		http.Redirect(w, r, "/site", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "signin", "Sign in", signInData{Next: r.URL.Query().Get("next")})
}

type signInData struct {
	Next  string
	Error string
}

// signIn turns a token into a session cookie. The token is the only
// thing it is given; its Origin must be the console's.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.PostFormValue("next"))
	if err := checkOrigin(r); err != nil {
		s.fail(w, r, http.StatusForbidden, err.Error())
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	name, g, ok := "", access.Grant{}, false
	if token != "" {
		name, g, ok = s.lookup(token)
	}
	now := s.now()
	switch {
	case !ok:
		s.render(w, r, http.StatusUnauthorized, "signin", "Sign in",
			signInData{Next: next, Error: "that token opens nothing here: check it, or ask an admin for one"})
		return
	case g.Expired(now):
		s.render(w, r, http.StatusUnauthorized, "signin", "Sign in",
			signInData{Next: next, Error: "that token has expired: ask an admin for a new one"})
		return
	}
	http.SetCookie(w, s.keys.cookie(r, newSession(token, g, now)))
	s.log.Info("console sign-in", "token", name, "role", g.Effective(), "remote", r.RemoteAddr)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// safeNext is where to go after signing in: a path of this console, or
// the overview.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.HasPrefix(next, "/v1/") || next == "/" {
		return "/site"
	}
	return next
}

// signOut ends the session in this browser.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, clearCookie(r))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
