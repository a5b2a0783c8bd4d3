package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
)

// Cluster is the node of a replicated central (*cluster.Node).
type Cluster interface {
	Status() cluster.Status
	AddVoter(ctx context.Context, m *store.Member) error
	RemoveServer(ctx context.Context, id string) error
}

// JoinKeyRequest asks for central's key, sealed for the node named ID.
type JoinKeyRequest struct {
	ID string `json:"id"`
}

// JoinKeyResponse holds the key sealed with a key derived from the
// caller's token (store.SaveJoinKey opens it).
type JoinKeyResponse struct {
	SealedKey []byte `json:"sealed_key"`
}

// errSingle answers the cluster routes of a central that is not
// replicated.
var errSingle = errs.Conflict("this central runs as a single node (no raft_addr): it has no cluster")

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil {
		s.writeError(w, r, errSingle)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.cluster.Status())
}

// clusterKey hands a joining node central's key, sealed for it.
func (s *Server) clusterKey(w http.ResponseWriter, r *http.Request) {
	var req JoinKeyRequest
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cluster == nil {
		s.writeError(w, r, errSingle)
		return
	}
	if req.ID == "" {
		s.writeError(w, r, errs.Invalid("id", "is required"))
		return
	}
	sealed := s.db.SealKeyFor(httpapi.Bearer(r), req.ID)
	s.log.Info("cluster: key handed to a joining node", "id", req.ID)
	httpapi.WriteJSON(w, http.StatusOK, JoinKeyResponse{SealedKey: sealed})
}

// clusterAdd makes a node a voter.
func (s *Server) clusterAdd(w http.ResponseWriter, r *http.Request) {
	var m store.Member
	if err := decodeBody(r, &m, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if s.cluster == nil {
		s.writeError(w, r, errSingle)
		return
	}
	if err := s.cluster.AddVoter(r.Context(), &m); err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, s.cluster.Status())
}

func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) {
	if s.cluster == nil {
		s.writeError(w, r, errSingle)
		return
	}
	if err := s.cluster.RemoveServer(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// isUnavailable reports whether err means this node cannot take the
// change now (it does not lead, or lost the lead in the middle).
func isUnavailable(err error) bool {
	return errors.Is(err, store.ErrNotApplied) || errors.Is(err, cluster.ErrNotLeader)
}
