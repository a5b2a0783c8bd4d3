package artifacts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/outposthq/outpost/central/internal/cluster"
	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/httpapi"
	"github.com/outposthq/outpost/internal/raftnode"
)

// peerArtifactPath is where a member serves its artifacts to the others,
// on its Raft port (cluster.Config.Peer).
const peerArtifactPath = cluster.PeerPrefix + "artifacts/"

// recordRequest is a follower's record of itself as a holder, sent to the
// leader.
type recordRequest struct {
	Artifact *store.Artifact `json:"artifact"`
	Create   bool            `json:"create,omitempty"`
}

// PeerHandler serves the other members, on the Raft port
// (cluster.Config.Peer; the port admits members only):
//
//	GET    /internal/artifacts/{sha256}         this node's copy, with Range
//	POST   /internal/artifacts/{sha256}/holder  the caller holds it (leader only)
//	DELETE /internal/artifacts/{sha256}/holder  the caller no longer does (leader only)
//	POST   /internal/artifacts/sent             bytes the caller sent to sites (leader only)
//
// The member a write is about is the caller, named by its certificate.
func (n *Node) PeerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+peerArtifactPath+"{sha256}", n.servePeer)
	mux.HandleFunc("POST "+peerArtifactPath+"{sha256}/holder", n.leaderOnly(n.peerRecord))
	mux.HandleFunc("DELETE "+peerArtifactPath+"{sha256}/holder", n.leaderOnly(n.peerForget))
	mux.HandleFunc("POST "+peerArtifactPath+"sent", n.leaderOnly(n.peerSent))
	return mux
}

// servePeer answers a member's fetch of an artifact from this node's
// store.
func (n *Node) servePeer(w http.ResponseWriter, r *http.Request) {
	d, err := artifact.ParseDigest(r.PathValue("sha256"))
	if err == nil {
		err = n.store.Serve(w, r, d)
	}
	if err != nil {
		http.Error(w, "this node does not hold the artifact", http.StatusNotFound)
	}
}

// leaderOnly serves h to a member while this node leads: a write.
func (n *Node) leaderOnly(h func(w http.ResponseWriter, r *http.Request, member string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := raftnode.PeerFrom(r.Context())
		switch {
		case !ok:
			httpapi.WriteError(w, &errs.Error{Code: httpapi.CodeForbidden, Message: "members only"})
		case !n.leads():
			httpapi.WriteError(w, &errs.Error{Code: httpapi.CodeUnavailable, Message: "this central node does not lead"})
		default:
			h(w, r, p.ID)
		}
	}
}

func (n *Node) peerRecord(w http.ResponseWriter, r *http.Request, member string) {
	var req recordRequest
	if err := decode(r, &req); err != nil {
		n.writeError(w, err)
		return
	}
	if req.Artifact == nil || string(req.Artifact.Digest) != r.PathValue("sha256") {
		n.writeError(w, errs.Invalid("sha256", "the body's artifact is not the path's"))
		return
	}
	rec, err := n.db.RecordArtifact(member, req.Artifact, req.Create)
	if err != nil {
		n.writeError(w, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, rec)
}

func (n *Node) peerForget(w http.ResponseWriter, r *http.Request, member string) {
	if err := n.db.ForgetArtifactCopy(member, artifact.Digest(r.PathValue("sha256"))); err != nil {
		n.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (n *Node) peerSent(w http.ResponseWriter, r *http.Request, _ string) {
	var counts []store.SentCount
	if err := decode(r, &counts); err != nil {
		n.writeError(w, err)
		return
	}
	if err := n.db.CountArtifactSent(counts); err != nil {
		n.writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// maxPeerBody bounds a member's JSON call.
const maxPeerBody = 1 << 20

func decode(r *http.Request, v any) error {
	raw, err := httpapi.ReadBody(r, maxPeerBody)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return errs.Invalid("body", "is not valid JSON")
	}
	return nil
}

// writeError answers a member: a refusal as it is, anything else (this
// node lost the lead) as unavailable.
func (n *Node) writeError(w http.ResponseWriter, err error) {
	e, ok := errs.AsError(err)
	if !ok {
		n.log.Warn("artifacts: a member's call not applied", "err", err)
		e = &errs.Error{Code: httpapi.CodeUnavailable, Message: "not applied; retry"}
	}
	httpapi.WriteError(w, e)
}

// callLeader sends a member's call to the leader. A refusal comes back as
// the *errs.Error it was; any other failure wraps store.ErrNotApplied
// (retry it).
func (n *Node) callLeader(ctx context.Context, method, path string, body, out any) error {
	base := n.cluster.LeaderInternal()
	if base == "" {
		return fmt.Errorf("%w: central has no leader", store.ErrNotApplied)
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.cluster.HTTPClient().Do(req)
	if err != nil {
		return fmt.Errorf("%w: the leader: %w", store.ErrNotApplied, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody))
	if err != nil {
		return fmt.Errorf("%w: the leader's answer: %w", store.ErrNotApplied, err)
	}
	if resp.StatusCode < 300 {
		if out == nil || len(raw) == 0 {
			return nil
		}
		return json.Unmarshal(raw, out)
	}
	var eb httpapi.ErrorBody
	if json.Unmarshal(raw, &eb) == nil && eb.Error != nil && isRefusal(eb.Error.Code) {
		return eb.Error
	}
	return fmt.Errorf("%w: the leader answered %s", store.ErrNotApplied, resp.Status)
}

func isRefusal(code string) bool {
	return code == errs.CodeInvalid || code == errs.CodeNotFound || code == errs.CodeConflict
}
