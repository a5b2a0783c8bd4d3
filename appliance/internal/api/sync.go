package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// SyncStatus is the answer of GET /v1/sync: where the site stands with
// central, as this node's store holds it, on any node.
type SyncStatus struct {
	// Link is the link to central as the leader last recorded it,
	// naming that leader; null when unknown (no leader has reported one,
	// or the site has no central).
	Link *store.Link `json:"link"`
	store.SyncState
	// Undelivered counts the events central has not acknowledged.
	Undelivered uint64 `json:"undelivered"`
}

// syncStatus answers SyncStatus.
func (s *Server) syncStatus(w http.ResponseWriter, r *http.Request) {
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var st SyncStatus
	err := s.db.View(func(tx *store.Tx) (err error) {
		st.SyncState = tx.SyncState()
		st.Link, err = tx.Link()
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if st.LastSeq > st.AckedSeq {
		st.Undelivered = st.LastSeq - st.AckedSeq
	}
	writeJSON(w, http.StatusOK, st)
}
