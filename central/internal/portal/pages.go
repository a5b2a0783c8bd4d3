package portal

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"

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

// view is what every page gets: the session's view, and whether orders
// may be placed.
type view struct {
	webui.View
	// CanOrder is CanOperate with a placer to place orders through.
	CanOrder bool
	// Live says the page has live regions.
	Live bool
}

// render writes page name with data, as the request's session sees it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	v := view{View: webui.NewView(r, s.now(), name, title, data)}
	v.CanOrder = v.CanOperate && s.cfg.Orders != nil
	v.Live = v.Signed && name != "error" && name != "preview"
	s.pages.Write(w, s.log, status, name, v)
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
