package artifacts

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/errs"
)

// plan is the replicator's plan: every catalogued artifact, from the
// peers that hold it and, on the leader, from its upstream URL; and the
// garbage, what this node holds that the catalogue does not.
func (n *Node) plan(ctx context.Context) (artifact.Plan, error) {
	recs, err := n.db.Artifacts()
	if err != nil {
		return artifact.Plan{}, err
	}
	peers, err := n.peers()
	if err != nil {
		return artifact.Plan{}, err
	}
	leader := n.leads()
	var p artifact.Plan
	catalogued := map[artifact.Digest]bool{}
	for _, a := range recs {
		catalogued[a.Digest] = true
		w := artifact.Want{Info: artifact.Info{Digest: a.Digest, Size: a.Size}, Recorded: slices.Contains(a.Nodes, n.self)}
		for _, id := range a.Nodes {
			if addr, ok := peers[id]; ok && id != n.self {
				w.Sources = append(w.Sources, n.peerSource(id, addr, a.Digest))
			}
		}
		if a.Source.URL != "" && leader && n.Problem(a.Digest) == "" {
			// Only the leader crosses the WAN; the others wait for a peer.
			w.Sources = append(w.Sources, artifact.Source{Name: upstreamName + store.RedactURL(a.Source.URL),
				URL: a.Source.URL, Client: n.upstream, WAN: true})
		}
		p.Want = append(p.Want, w)
	}
	p.Garbage = n.garbage(catalogued)
	return p, nil
}

// peers are the Raft addresses of the other members, by id; none for a
// single central.
func (n *Node) peers() (map[string]string, error) {
	out := map[string]string{}
	if n.cluster == nil {
		return out, nil
	}
	members, err := n.db.Members()
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.ID != n.self {
			out[m.ID] = m.RaftAddr
		}
	}
	return out, nil
}

// peerSource is digest at member id, on its Raft port. The cluster's
// client is used without its overall timeout: a large artifact takes
// longer than a call, and a stalled transfer is ended by the fetch.
func (n *Node) peerSource(id, raftAddr string, d artifact.Digest) artifact.Source {
	return artifact.Source{Name: "peer " + id, URL: "https://" + raftAddr + peerArtifactPath + string(d),
		Client: &http.Client{Transport: n.cluster.HTTPClient().Transport}}
}

// garbage lists what this node holds, or had been fetching, that the
// catalogue no longer has, but for the uploads kept (keep).
func (n *Node) garbage(catalogued map[artifact.Digest]bool) []artifact.Digest {
	held, err := n.store.List()
	if err != nil {
		n.log.Warn("artifacts: listing this node's store", "err", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	candidates := map[artifact.Digest]bool{}
	for _, i := range held {
		candidates[i.Digest] = true
	}
	for d := range n.known {
		candidates[d] = true
	}
	now := n.now()
	for d, until := range n.held {
		if !until.IsZero() && now.After(until) {
			delete(n.held, d)
		}
	}
	var out []artifact.Digest
	for d := range candidates {
		if _, kept := n.held[d]; !catalogued[d] && !kept {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	n.known = catalogued
	for d := range n.corruptUpstream {
		if !catalogued[d] { // deleted: registering it again starts afresh
			delete(n.corruptUpstream, d)
		}
	}
	return out
}

// present records that this node holds an artifact of the catalogue.
func (n *Node) present(ctx context.Context, i artifact.Info) error {
	_, err := n.record(ctx, &store.Artifact{Digest: i.Digest, Size: i.Size}, false)
	return err
}

// removed records that this node no longer holds d, if the catalogue
// still has it (it was uploaded again while it was being removed).
func (n *Node) removed(ctx context.Context, d artifact.Digest) error {
	a, err := n.db.Artifact(d)
	if errors.Is(err, errs.ErrNotFound) || (err == nil && !slices.Contains(a.Nodes, n.self)) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.leads() {
		err = n.db.ForgetArtifactCopy(n.self, d)
	} else {
		err = n.callLeader(ctx, http.MethodDelete, peerArtifactPath+string(d)+"/holder", nil, nil)
	}
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	return err
}

// record records that this node holds a.Digest (see
// store.DB.RecordArtifact), through the leader.
func (n *Node) record(ctx context.Context, a *store.Artifact, create bool) (*store.Artifact, error) {
	if n.leads() {
		return n.db.RecordArtifact(n.self, a, create)
	}
	var out store.Artifact
	if err := n.callLeader(ctx, http.MethodPost, peerArtifactPath+string(a.Digest)+"/holder", &recordRequest{Artifact: a, Create: create}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// corrupt counts a transfer thrown away, and those from an upstream URL
// for each artifact.
func (n *Node) corrupt(_ context.Context, err *artifact.CorruptError) {
	n.m.corrupt.Inc()
	if !strings.HasPrefix(err.Source, upstreamName) {
		return
	}
	n.mu.Lock()
	n.corruptUpstream[err.Want]++
	k := n.corruptUpstream[err.Want]
	n.mu.Unlock()
	if k == maxCorruptUpstream {
		n.log.Error("artifacts: the upstream URL does not serve the artifact registered: no longer fetched",
			"sha256", err.Want, "source", err.Source, "transfers", k)
	}
}

// upstreamName begins the name of an upstream source.
const upstreamName = "upstream "
