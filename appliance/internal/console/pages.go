package console

import (
	"net/http"
	"net/url"

	"github.com/outposthq/outpost/appliance/internal/api"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/webui"
)

// view is what every page gets: the session's view, and the node.
type view struct {
	webui.View
	Node   string
	Leader string
	// Live names the events the page refreshes on ("" none; "all", or a
	// machine's id).
	Live string
}

// render writes page name with data, as the request's session sees it.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	st := s.cfg.Cluster.Status()
	v := view{View: webui.NewView(r, s.now(), name, title, data), Node: st.ID, Leader: st.LeaderID}
	if name != "signin" && name != "error" {
		v.Live = "all"
	}
	s.pages.Write(w, s.log, status, name, v)
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
