package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
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
type tokenView struct {
	store.Meta
	ID   string `json:"id"`
	Name string `json:"name"`
}

// createToken makes a new API token; its secret is in this answer only.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Name == "" {
		s.writeError(w, r, errs.Invalid("name", "is required"))
		return
	}
	token, rec := NewToken(req.Name)
	if err := s.site.CreateToken(r.Context(), rec); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": rec.ID, "name": rec.Name, "token": token})
}
