package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/agentproto"
	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// prepareWorkflow readies a new workflow for the store: a client gives
// the machine, the template and values; the appliance draws the nonce its
// credential derives from and fills in where the installer reaches the
// appliance. The state is the appliance's to make.
func prepareWorkflow(s *Server, w, _ *store.Workflow) error {
	w.Normalize()
	w.State = nil
	var nonce [16]byte
	rand.Read(nonce[:])
	w.Nonce = hex.EncodeToString(nonce[:])
	if s.bootURL != "" {
		if w.Values == nil {
			w.Values = map[string]string{}
		}
		for k, v := range map[string]string{agentproto.ValueBootURL: s.bootURL, agentproto.ValueMetadataURL: s.bootURL} {
			if _, ok := w.Values[k]; !ok {
				w.Values[k] = v
			}
		}
	}
	return nil
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
	res, err := s.propose(r, replica.AdvanceWorkflow, replica.Advance{
		Workflow: r.PathValue("key"), Kind: replica.AdvanceCancel, Reason: req.Reason, Time: s.now().UTC(),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	stored, err := replica.DecodeValue[store.Workflow](res)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, workflowView(stored))
}
