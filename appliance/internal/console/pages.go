package console

import (
	"bytes"
	"net/http"
	"net/url"
	"time"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/internal/access"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/webui"
)

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
	// Last is the last event the page reflects (webui.SignedIn.Version).
	Last uint64
	// Live names the events the page refreshes on ("" none; "all", or a
	// machine's id).
	Live string
	Data any
}

// render writes page name with data, as the request's session sees it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	si := webui.SessionOf(r.Context())
	st := s.cfg.Cluster.Status()
	v := view{Title: title, Nav: name, Signed: si.Token != "", Caller: si.Caller, CSRF: si.CSRF,
		CanOperate: si.Caller.Role.Allows(access.Operator), Node: st.ID, Leader: st.LeaderID,
		Now: s.now().UTC(), URL: r.URL.RequestURI(), Last: si.Version, Data: data}
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

// signInPage renders the sign-in form.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request, status int, f webui.SignInForm) {
	s.render(w, r, status, "signin", "Sign in", f)
}
