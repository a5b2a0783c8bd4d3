package portal

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/webui"
)

var funcs = template.FuncMap{
	// query is a machines search's URL.
	"query": func(q string) string { return "/machines?q=" + url.QueryEscape(q) },
	"short": shortDigest,
}

// shortDigest is a digest's first 12 hex digits.
func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		return d[:12]
	}
	return d
}

// view is what every page gets: who is signed in, what they may do, and
// the page's own data.
type view struct {
	Title string
	Nav   string
	// Signed is false on the sign-in page.
	Signed     bool
	Caller     httpapi.Caller
	CSRF       string
	CanOperate bool
	// CanOrder is CanOperate with a placer to place orders through.
	CanOrder bool
	Now      time.Time
	// URL is the page's own, which its live regions reload from.
	URL string
	// Version is the fleet's version when the request came: the page's
	// stream starts after it.
	Version uint64
	// Live says the page has live regions.
	Live bool
	Data any
}

// render writes page name with data, as the request's session sees it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	si := webui.SessionOf(r.Context())
	v := view{Title: title, Nav: name, Signed: si.Token != "", Caller: si.Caller, CSRF: si.CSRF,
		CanOperate: si.Caller.Role.Allows(access.Operator), Now: s.now().UTC(), URL: r.URL.RequestURI(),
		Version: si.Version, Data: data}
	v.CanOrder = v.CanOperate && s.cfg.Orders != nil
	v.Live = v.Signed && name != "error" && name != "preview"
	var b bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&b, "layout", v); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error; see central's log", http.StatusInternalServerError)
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

// failErr answers with what a browser may see of err: a domain error as
// it is, anything else logged and said in general words.
func (s *Server) failErr(w http.ResponseWriter, r *http.Request, err error) {
	if e, ok := errs.AsError(err); ok {
		s.fail(w, r, httpapi.Status(e.Code), e.Error())
		return
	}
	if errors.Is(err, errs.ErrNotFound) {
		s.fail(w, r, http.StatusNotFound, err.Error())
		return
	}
	s.log.Error("portal request", "method", r.Method, "path", r.URL.Path, "err", err)
	s.fail(w, r, http.StatusInternalServerError, "central could not answer this page; see its log")
}

// signInPage renders the sign-in form.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request, status int, f webui.SignInForm) {
	s.render(w, r, status, "signin", "Sign in", f)
}
