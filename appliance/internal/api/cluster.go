package api

import (
	"net/http"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/seal"
)

func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cluster.Status())
}

// JoinRequest is what a node sends to join the cluster. A node joins in
// two steps: with its public key and Voter false it is recorded, pinned
// to that key, added as a non-voter and given its certificate; once it
// has installed the certificate and caught up, it asks again with Voter
// true. Without a public key (the CLI's cluster join) the node is pinned
// to no key until it registers its own at its first start.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIURL   string `json:"api_url"`
	// PublicKey is the node's Ed25519 public key, PKIX DER (base64 in
	// JSON).
	PublicKey []byte `json:"public_key,omitempty"`
	// Voter makes the node a voter; false adds it as a non-voter.
	Voter bool `json:"voter,omitempty"`
}

// JoinResponse carries the site key sealed with a key derived from the
// caller's own token (JoinKey), so that it never crosses the wire, or
// lands in a log, in the clear; the node's certificate from the site's CA
// (DER), if it sent a public key; and the members, with the key each is
// pinned to, which the node trusts on the Raft port until its store holds
// their records.
type JoinResponse struct {
	SealedSiteKey []byte         `json:"sealed_site_key"`
	Certificate   []byte         `json:"certificate,omitempty"`
	Members       []store.Member `json:"members,omitempty"`
}

// JoinKeyPurpose labels the key that seals the site key for a joiner.
const JoinKeyPurpose = "outpost join v1"

// JoinKey is the key a joining node opens JoinResponse.SealedSiteKey with.
func JoinKey(token string) *seal.Key { return seal.KeyFromPassphrase(token, JoinKeyPurpose) }

// clusterJoin admits the caller (see JoinRequest; the leader records it,
// a follower forwards it) and hands it the site key and its certificate.
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
	cert, members, err := s.cluster.Join(r.Context(), m, req.PublicKey, req.Voter)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sealed := JoinKey(bearer(r)).Seal(s.key.Raw(), "site key for "+req.ID)
	writeJSON(w, http.StatusOK, JoinResponse{SealedSiteKey: sealed, Certificate: cert, Members: members})
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

// RotateCARequest is a step of a rotation of the site's CA: "begin"
// makes the next generation current, the current one still trusted, and
// every node renews its certificate under it; "finish", once every
// member has (GET /v1/cluster says which have), trusts the new
// generation alone.
type RotateCARequest struct {
	Step string `json:"step"`
}

// clusterRotateCA takes a step of a rotation of the site's CA and
// answers with where it stands.
func (s *Server) clusterRotateCA(w http.ResponseWriter, r *http.Request) {
	var req RotateCARequest
	if err := decodeBody(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Step != site.CABegin && req.Step != site.CAFinish {
		s.writeError(w, r, errs.Invalid("step", "must be %q or %q", site.CABegin, site.CAFinish))
		return
	}
	c, err := s.cluster.RotateCA(r.Context(), req.Step)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}
