package artifacts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
)

// States of an artifact at the site.
const (
	StateMissing      = "missing"      // an image points at it and no node holds it
	StatePulling      = "pulling"      // the leader is pulling it from past the site
	StatePresent      = "present"      // a node holds it
	StateUnreferenced = "unreferenced" // no image points at it: nodes remove it after the grace period
)

// Record is an artifact as the site knows it: the replicated record with
// its state, and the members that do not hold it yet.
type Record struct {
	SHA256            string              `json:"sha256"`
	Size              int64               `json:"size_bytes,omitempty"`
	Names             []string            `json:"names,omitempty"`
	State             string              `json:"state"`
	Nodes             []string            `json:"nodes"`
	Missing           []string            `json:"missing_nodes"`
	NeededSince       time.Time           `json:"needed_since"`
	UnreferencedSince time.Time           `json:"unreferenced_since,omitzero"`
	Pull              *store.ArtifactPull `json:"pull,omitempty"`
}

// RecordOf is rec as the site shows it, members being the site's nodes.
func RecordOf(rec *store.Artifact, members []string) Record {
	r := Record{SHA256: rec.SHA256, Size: rec.Size, Names: rec.Names, Nodes: rec.Holders(), Missing: []string{},
		NeededSince: rec.NeededSince, UnreferencedSince: rec.UnreferencedSince, Pull: rec.Pull}
	for _, m := range members {
		if !rec.HeldBy(m) {
			r.Missing = append(r.Missing, m)
		}
	}
	switch {
	case !rec.Referenced():
		r.State = StateUnreferenced
		r.Missing = []string{}
	case len(rec.Nodes) > 0:
		r.State = StatePresent
	case rec.Pull != nil && rec.Pull.Error == "":
		r.State = StatePulling
	default:
		r.State = StateMissing
	}
	return r
}

// Records returns every artifact the site records, by digest.
func Records(tx *store.Tx) ([]Record, error) {
	recs, err := store.List[store.Artifact](tx)
	if err != nil {
		return nil, err
	}
	ms, err := store.List[store.Member](tx)
	if err != nil {
		return nil, err
	}
	members := make([]string, len(ms))
	for i, m := range ms {
		members[i] = m.ID
	}
	out := make([]Record, len(recs))
	for i, rec := range recs {
		out[i] = RecordOf(rec, members)
	}
	return out, nil
}

// NodeStatus is one node's own artifacts: what its disk holds, what it
// lacks and what it is fetching.
type NodeStatus struct {
	Node string `json:"node"`
	// Artifacts and HeldBytes are the whole artifacts the node holds;
	// PartialBytes the broken transfers it keeps to resume.
	Artifacts    int   `json:"artifacts"`
	HeldBytes    int64 `json:"held_bytes"`
	PartialBytes int64 `json:"partial_bytes"`
	// Missing are the digests an image points at that the node does not
	// hold.
	Missing []string `json:"missing"`
	// Transfer is the fetch in progress, if any.
	Transfer *artifact.Transfer `json:"transfer,omitempty"`
	// FetchedWAN and FetchedPeer are the bytes the node fetched since it
	// started, from past the site and from peers; Corrupt the transfers
	// it threw away.
	FetchedWAN  int64 `json:"fetched_wan_bytes"`
	FetchedPeer int64 `json:"fetched_peer_bytes"`
	Corrupt     int64 `json:"corrupt_transfers"`
	// Error says why a node's status could not be read (Everywhere).
	Error string `json:"error,omitempty"`
}

// Status is this node's own.
func (n *Node) Status() NodeStatus {
	st := NodeStatus{Node: n.cfg.ID, Missing: []string{}}
	held, _ := n.cfg.Store.List()
	st.Artifacts = len(held)
	st.HeldBytes, st.PartialBytes = n.cfg.Store.Usage()
	st.Missing = n.missing()
	if tr, ok := n.rep.Current(); ok {
		st.Transfer = &tr
	}
	s := n.rep.Stats()
	st.FetchedWAN, st.FetchedPeer, st.Corrupt = s.WANBytes, s.PeerBytes, s.Corrupt
	return st
}

// missing are the referenced digests this node does not hold.
func (n *Node) missing() []string {
	out := []string{}
	_ = n.cfg.DB.View(func(tx *store.Tx) error {
		recs, err := store.List[store.Artifact](tx)
		for _, rec := range recs {
			if _, ok := n.cfg.Store.Stat(artifact.Digest(rec.SHA256)); rec.Referenced() && !ok {
				out = append(out, rec.SHA256)
			}
		}
		return err
	})
	return out
}

// Everywhere returns every member's status: this node's own, the others'
// asked over the Raft port; a member that does not answer has Error.
func (n *Node) Everywhere(ctx context.Context) []NodeStatus {
	var members []*store.Member
	_ = n.cfg.DB.View(func(tx *store.Tx) (err error) { members, err = store.List[store.Member](tx); return err })
	out := make([]NodeStatus, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		if m.ID == n.cfg.ID {
			out[i] = n.Status()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = n.askStatus(ctx, m)
		}()
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b NodeStatus) int {
		switch {
		case a.Node < b.Node:
			return -1
		case a.Node > b.Node:
			return 1
		}
		return 0
	})
	return out
}

// askStatus asks member m for its status.
func (n *Node) askStatus(ctx context.Context, m *store.Member) NodeStatus {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st := NodeStatus{Node: m.ID, Missing: []string{}}
	if n.cfg.Peers == nil {
		st.Error = "no peer client"
		return st
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+m.RaftAddr+InternalPath, nil)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	resp, err := n.cfg.Peers.Do(req)
	if err != nil {
		st.Error = fmt.Sprintf("node %s did not answer: %v", m.ID, err)
		return st
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		st.Error = fmt.Sprintf("node %s answered %s", m.ID, resp.Status)
		return st
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&st); err != nil {
		st = NodeStatus{Node: m.ID, Missing: []string{}, Error: fmt.Sprintf("node %s: %v", m.ID, err)}
	}
	return st
}

// Handler serves InternalPath on the Raft port (cluster's
// SetArtifactHandler): this node's artifacts, by digest, with Range, to
// the other members, and its Status. It serves only what this node
// holds, whole and verified: it never asks a peer.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+InternalPath+"/{hex}", func(w http.ResponseWriter, r *http.Request) {
		d, err := artifact.ParseDigest(r.PathValue("hex"))
		if err != nil || string(d) != r.PathValue("hex") {
			http.Error(w, "not a digest", http.StatusNotFound)
			return
		}
		if err := n.cfg.Store.Serve(w, r, d); errors.Is(err, artifact.ErrNotFound) {
			http.Error(w, "artifact "+d.Ref()+" is not held by node "+n.cfg.ID, http.StatusNotFound)
		}
	})
	mux.HandleFunc("GET "+InternalPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(n.Status())
	})
	return mux
}
