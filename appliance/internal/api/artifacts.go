package api

import (
	"context"
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Artifacts is this node's artifacts (package artifacts): what its own
// disk holds and fetches, and, asked over the Raft port, every member's.
type Artifacts interface {
	Status() artifacts.NodeStatus
	Everywhere(ctx context.Context) []artifacts.NodeStatus
}

// ArtifactList is the answer of GET /v1/artifacts: every artifact the
// site records, with its state and the nodes that hold it and lack it;
// this node's own store; and, with ?node=all, every member's.
type ArtifactList struct {
	Items []artifacts.Record     `json:"items"`
	Node  *artifacts.NodeStatus  `json:"node,omitempty"`
	Nodes []artifacts.NodeStatus `json:"nodes,omitempty"`
}

// listArtifacts answers ArtifactList.
func (s *Server) listArtifacts(w http.ResponseWriter, r *http.Request) {
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	all := r.URL.Query().Get("node")
	if all != "" && all != "all" {
		s.writeError(w, r, errs.Invalid("node", "%q: want all, or nothing for this node's", all))
		return
	}
	var out ArtifactList
	err := s.db.View(func(tx *store.Tx) (err error) { out.Items, err = artifacts.Records(tx); return err })
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if out.Items == nil {
		out.Items = []artifacts.Record{}
	}
	if s.artifacts != nil {
		st := s.artifacts.Status()
		out.Node = &st
		if all == "all" {
			out.Nodes = s.artifacts.Everywhere(r.Context())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// getArtifact answers one artifact's record.
func (s *Server) getArtifact(w http.ResponseWriter, r *http.Request) {
	if err := s.consistent(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	key := r.PathValue("sha256")
	if d, ok := store.DigestRef(key); ok {
		key = d
	}
	var rec artifacts.Record
	err := s.db.View(func(tx *store.Tx) error {
		a, err := store.Get[store.Artifact](tx, key)
		if err != nil {
			return err
		}
		ms, err := store.List[store.Member](tx)
		ids := make([]string, len(ms))
		for i, m := range ms {
			ids[i] = m.ID
		}
		rec = artifacts.RecordOf(a, ids)
		return err
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}
