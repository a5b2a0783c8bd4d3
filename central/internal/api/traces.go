package api

import (
	"net/http"

	"github.com/outposthq/outpost/central/internal/traces"
	"github.com/outposthq/outpost/internal/httpapi"
)

// getTrace answers a trace: its spans by start, its provision's phases
// and how complete it is (traces.Trace); 404 naming it if central holds
// none of its spans.
func (s *Server) getTrace(w http.ResponseWriter, r *http.Request) {
	tr, err := traces.Read(s.db, r.PathValue("trace_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, tr)
}

// machineTrace answers the trace of a machine's last order, as getTrace;
// 404 saying why when it has none.
func (s *Server) machineTrace(w http.ResponseWriter, r *http.Request) {
	tr, err := traces.MachineTrace(s.fleet, s.db, r.PathValue("site"), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, tr)
}
