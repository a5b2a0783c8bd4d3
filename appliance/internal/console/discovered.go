package console

import (
	"net/http"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// discovered serves the machines discovery found and nobody enrolled.
func (s *Server) discovered(w http.ResponseWriter, r *http.Request) {
	var d []*store.Machine
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		ms, err := store.List[store.Machine](tx)
		for _, m := range ms {
			if m.State == store.StateDiscovered {
				d = append(d, m.View())
			}
		}
		return err
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "discovered", "Discovered machines", d)
}

// enroll makes a discovered machine one the site provisions: ready, with
// the hostname the form gives, through the proposer as PUT
// /v1/machines/{id} does (at the version shown, so that a change in the
// meantime is refused rather than overwritten).
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var m *store.Machine
	if err := s.cfg.Store.View(func(tx *store.Tx) (err error) {
		m, err = store.Get[store.Machine](tx, id)
		return err
	}); err != nil {
		s.failErr(w, r, err)
		return
	}
	if m.State != store.StateDiscovered {
		s.failErr(w, r, errs.Conflict("machine %s is %s, not discovered: it is enrolled already", id, m.State))
		return
	}
	m.Hostname = strings.TrimSpace(r.PostFormValue("hostname"))
	m.State = store.StateReady
	if _, err := s.cfg.Site.PutMachine(r.Context(), m, m.Version); err != nil {
		s.failErr(w, r, err)
		return
	}
	http.Redirect(w, r, "/machines/"+id, http.StatusSeeOther)
}
