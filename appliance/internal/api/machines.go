package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/machinequery"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// listMachines answers {"items": [...]} with the machines that match the
// search ?q= (machinequery's grammar; every machine without one). A query
// it cannot read is a 400 naming the term at fault, in field "q".
func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) {
	q, err := machinequery.Parse(r.URL.Query().Get("q"))
	if err != nil {
		s.writeError(w, r, errs.Invalid("q", "%v", err))
		return
	}
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	items := []any{}
	err = s.db.View(func(tx *store.Tx) error {
		found, err := machinequery.Select(tx, q, s.now())
		for _, m := range found {
			items = append(items, machines.show(m))
		}
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}
