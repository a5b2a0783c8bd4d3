package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/store"
)

func orderView(o *store.Order) any {
	c := *o
	c.Nonce = ""
	return &c
}

// workflowView hides the nonce: it is no secret without the site key,
// but no client needs it.
func workflowView(w *store.Workflow) any {
	c := *w
	c.Nonce = ""
	return &c
}

// cancelRequest is the body of POST /v1/workflows/{key}/cancel.
type cancelRequest struct {
	Reason string `json:"reason,omitempty"`
}

// cancelWorkflow ends an active workflow: its running actions fail, its
// pending ones are skipped, and its machine is failed with the reason.
func (s *Server) cancelWorkflow(w http.ResponseWriter, r *http.Request) {
	var req cancelRequest
	if r.ContentLength != 0 {
		if err := decodeBody(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	if req.Reason == "" {
		req.Reason = "cancelled through the API"
	}
	stored, err := s.site.CancelWorkflow(r.Context(), r.PathValue("key"), req.Reason)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, workflowView(stored))
}
