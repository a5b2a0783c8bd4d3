package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
)

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cluster.Status())
}

// JoinRequest is what a node sends to join the cluster.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIURL   string `json:"api_url"`
}

// JoinResponse carries the site key sealed with a key derived from the
// caller's own token (JoinKey), so that it never crosses the wire, or
// lands in a log, in the clear.
type JoinResponse struct {
	SealedSiteKey []byte `json:"sealed_site_key"`
}

// JoinKeyPurpose labels the key that seals the site key for a joiner.
const JoinKeyPurpose = "outpost join v1"

// JoinKey is the key a joining node opens JoinResponse.SealedSiteKey with.
func JoinKey(token string) *seal.Key { return seal.KeyFromPassphrase(token, JoinKeyPurpose) }

// clusterJoin adds the caller as a voter (on the leader; a follower
// forwards it) and hands it the site key.
func (s *Server) clusterJoin(w http.ResponseWriter, r *http.Request) {
	var req JoinRequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	m := store.Member{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIURL}
	if err := m.Validate(); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.cluster.AddVoter(r.Context(), m); err != nil {
		s.writeError(w, r, err)
		return
	}
	sealed := JoinKey(bearer(r)).Seal(s.key.Raw(), "site key for "+req.ID)
	writeJSON(w, http.StatusOK, JoinResponse{SealedSiteKey: sealed})
}

// clusterRemove removes a member; it must be sent to the leader.
func (s *Server) clusterRemove(w http.ResponseWriter, r *http.Request) {
	if err := s.cluster.RemoveServer(r.Context(), r.PathValue("id")); err != nil {
		if !s.cluster.IsLeader() {
			err = errs.Conflict("this node is not the leader; send the request to %s", s.cluster.Status().LeaderID)
		}
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
