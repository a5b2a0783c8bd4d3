package api

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/replica"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// prepareWorkflow readies a new workflow for the store: a client gives
// the machine, the template and values; the appliance draws the nonce its
// credential derives from and fills in where the installer reaches the
// appliance. The state is the appliance's to make.
func prepareWorkflow(s *Server, w, _ *store.Workflow) error {
	w.Normalize()
	w.State, w.Order = nil, ""
	w.Nonce = newNonce()
	w.Values = store.WithBootValues(w.Values, s.bootURL)
	return nil
}

// prepareOrder readies a new order: the nonce of the workflow it makes,
// and where the installer reaches the appliance; what it came to is the
// appliance's to say.
func prepareOrder(s *Server, o, _ *store.Order) error {
	o.State, o.Reason, o.Workflow, o.Jobs = "", "", "", nil
	o.Nonce = newNonce()
	if o.Action == store.OrderProvision || o.Action == store.OrderDeprovision {
		o.Values = store.WithBootValues(o.Values, s.bootURL)
	}
	return nil
}

func orderView(o *store.Order) any {
	c := *o
	c.Nonce = ""
	return &c
}

func newNonce() string {
	var nonce [16]byte
	rand.Read(nonce[:])
	return hex.EncodeToString(nonce[:])
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
