package api

import (
	"net/http"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Tokens, in the shape the appliance serves them (httpapi.TokenRequest),
// so that one CLI manages both: the secret in the answer to their
// creation only, the hash never.

func tokenView(t *store.Token) httpapi.TokenView {
	return httpapi.NewTokenView(t.ID, t.Name, t.Grant, t.CreatedAt)
}

// createToken makes a token with a name, a role and an optional expiry.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req httpapi.TokenRequest
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := req.Grant(s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, rec := store.NewTokenWith(req.Name, g)
	if err := s.db.CreateToken(rec); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, _ := httpapi.CallerOf(r.Context())
	s.log.Info("token created", "token", rec.ID, "name", rec.Name, "role", rec.Role, "by", c.Name)
	httpapi.WriteJSON(w, http.StatusCreated, httpapi.TokenCreated{TokenView: tokenView(rec), Token: token})
}

// listTokens answers {"items": [...]}, as the appliance does.
func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	all, err := s.db.Tokens()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items := make([]httpapi.TokenView, len(all))
	for i, t := range all {
		items[i] = tokenView(t)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) getToken(w http.ResponseWriter, r *http.Request) {
	all, err := s.db.Tokens()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	for _, t := range all {
		if t.ID == r.PathValue("id") {
			httpapi.WriteJSON(w, http.StatusOK, tokenView(t))
			return
		}
	}
	s.writeError(w, r, errs.NotFound("token", r.PathValue("id")))
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request) {
	if err := s.db.DeleteToken(r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, _ := httpapi.CallerOf(r.Context())
	s.log.Info("token deleted", "token", r.PathValue("id"), "by", c.Name)
	w.WriteHeader(http.StatusNoContent)
}
