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
	// Issue gives a joining node a certificate from central's CA for its
	// public key (PKIX DER), with the members it may trust until it has
	// their records.
	Issue(id string, publicKey []byte, raftAddr, apiURL string) ([]byte, []*store.Member, error)
	// RotateCA takes a step of a rotation of central's CA (store.CABegin,
	// store.CAFinish) by the actor by, on the leader.
	RotateCA(step, by string) (store.CA, error)
}

// RotateCARequest is a step of a rotation of central's CA: "begin" makes
// the next generation current, the current one still trusted, and every
// node renews its certificate under it; "finish", once every member has
// (GET /v1/cluster names those that have not), trusts it alone.
type RotateCARequest struct {
	Step string `json:"step"`
}

// clusterRotateCA takes a step of a rotation of central's CA and
// answers with where it stands.
func (s *Server) clusterRotateCA(w http.ResponseWriter, r *http.Request) {
	var req RotateCARequest
	if err := decodeBody(r, &req, true); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Step != store.CABegin && req.Step != store.CAFinish {
		s.writeError(w, r, errs.Invalid("step", "must be %q or %q", store.CABegin, store.CAFinish))
		return
	}
	if s.cluster == nil {
		s.writeError(w, r, errSingle)
		return
	}
	c, err := s.cluster.RotateCA(req.Step, caller(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, c)
}

// JoinKeyRequest asks for central's key, sealed for the node named ID,
// and, with the node's public key, for its certificate. A node joins in
// two steps: this, then POST /v1/cluster/members with its record (which
// pins its key's fingerprint).
type JoinKeyRequest struct {
	ID string `json:"id"`
	// PublicKey is the node's Ed25519 public key, PKIX DER (base64 in
	// JSON).
	PublicKey []byte `json:"public_key,omitempty"`
	// RaftAddr and APIURL are named in the certificate.
	RaftAddr string `json:"raft_addr,omitempty"`
	APIURL   string `json:"api_url,omitempty"`
}

// JoinKeyResponse holds the key sealed with a key derived from the
// caller's token (store.SaveJoinKey opens it), the node's certificate
// (DER) if it sent a public key, and the members, with the key each is
// pinned to, which the node trusts on the Raft port until its store holds
// their records.
type JoinKeyResponse struct {
	SealedKey   []byte          `json:"sealed_key"`
	Certificate []byte          `json:"certificate,omitempty"`
	Members     []*store.Member `json:"members,omitempty"`
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

// clusterKey hands a joining node central's key, sealed for it, and its
// certificate.
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
	resp := JoinKeyResponse{SealedKey: s.db.SealKeyFor(httpapi.Bearer(r), req.ID)}
	if len(req.PublicKey) > 0 {
		var err error
		if resp.Certificate, resp.Members, err = s.cluster.Issue(req.ID, req.PublicKey, req.RaftAddr, req.APIURL); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	s.log.Info("cluster: key handed to a joining node", "id", req.ID, "certificate", resp.Certificate != nil)
	httpapi.WriteJSON(w, http.StatusOK, resp)
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
