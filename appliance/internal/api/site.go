package api

import (
	"net/http"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/httpapi"
)

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) {
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var set *store.Settings
	err := s.db.View(func(tx *store.Tx) (err error) { set, err = tx.Settings(); return err })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, set)
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request) {
	set := store.DefaultSettings()
	if err := decodeBody(r, set); err != nil {
		s.writeError(w, r, err)
		return
	}
	expect, err := ifMatch(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stored, err := s.site.PutSettings(r.Context(), set, expect)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, stored)
}

// tokenView is what the API shows of a token: never its hash.
func tokenView(t *store.Token) any {
	v := httpapi.NewTokenView(t.ID, t.Name, t.Grant, t.CreatedAt)
	v.Version = t.Version
	return v
}

// createToken makes a new API token with a name, a role and an optional
// expiry (httpapi.TokenRequest); its secret is in this answer only.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req httpapi.TokenRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	g, err := req.Grant(s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, rec := newToken(req.Name, g)
	if err := s.site.CreateToken(r.Context(), rec); err != nil {
		s.writeError(w, r, err)
		return
	}
	v := httpapi.NewTokenView(rec.ID, rec.Name, rec.Grant, time.Time{})
	writeJSON(w, http.StatusCreated, httpapi.TokenCreated{TokenView: v, Token: token})
}
