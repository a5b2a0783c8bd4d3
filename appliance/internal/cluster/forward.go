package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/outposthq/outpost/appliance/internal/artifacts"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/raftnode"
)

// Node-to-node endpoints. They are served on the Raft port, to members
// only, over the same mutual TLS as Raft (internal/raftnode), and reached
// at the leader's Raft address.
const (
	pathApply     = "/v1/internal/apply"
	pathReadIndex = "/v1/internal/readindex"
	pathJoin      = "/v1/internal/join"
	// pathArtifacts is where every node (not only the leader) serves
	// its artifacts to the others (SetArtifactHandler).
	pathArtifacts = artifacts.InternalPath

	// maxCommand bounds a forwarded command.
	maxCommand = 16 << 20
)

// errRetry means the peer asked did not take the request (it is not the
// leader, or it could not be reached at all): find the leader and retry.
var errRetry = errors.New("cluster: not leader, retry")

// internalHandler serves the endpoints followers use to reach the
// leader; raftnode serves it to members only.
func (n *Node) internalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathApply, n.serveCommit)
	mux.HandleFunc("GET "+pathReadIndex, n.serveReadIndex)
	mux.HandleFunc("POST "+pathJoin, n.serveJoin)
	mux.HandleFunc("GET "+pathArtifacts, n.serveArtifacts)
	mux.HandleFunc("GET "+pathArtifacts+"/", n.serveArtifacts)
	mux.HandleFunc("GET "+pathSpans, n.serveSpans)
	mux.HandleFunc("POST "+pathSpansForwarded, n.serveSpansForwarded)
	mux.HandleFunc("GET "+pathTraces+"{id}", n.serveTrace)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-n.opened:
			mux.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}

// SetArtifactHandler makes h (package artifacts) answer the artifact
// routes of the Raft port (pathArtifacts), to members only; until it is
// set they answer 503.
func (n *Node) SetArtifactHandler(h http.Handler) { n.artifacts.Store(&h) }

func (n *Node) serveArtifacts(w http.ResponseWriter, r *http.Request) {
	h := n.artifacts.Load()
	if h == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "this node's artifact store is not open yet", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// PeerClient reaches the other members' internal endpoints
// ("https://" + raft address + path) over the Raft port's mutual TLS,
// without the bound on a whole request that forwarding has: artifact
// transfers of gigabytes take long, and their readers end them when
// bytes stop coming.
func (n *Node) PeerClient() *http.Client { return n.peerClient }

// joinBody is what a follower forwards of a join.
type joinBody struct {
	Member store.Member `json:"member"`
	Voter  bool         `json:"voter"`
}

func (n *Node) serveCommit(w http.ResponseWriter, r *http.Request) {
	cmd, err := io.ReadAll(io.LimitReader(r.Body, maxCommand+1))
	if err != nil || len(cmd) > maxCommand {
		http.Error(w, "command unreadable or too large", http.StatusBadRequest)
		return
	}
	if !n.IsLeader() {
		http.Error(w, "not the leader", http.StatusMisdirectedRequest)
		return
	}
	if t, _ := command.Split(cmd); t == command.Batch || t == command.Noop {
		http.Error(w, "a batch or a no-op cannot be forwarded", http.StatusBadRequest)
		return
	}
	res, err := n.commitLocal(r.Context(), cmd)
	if err != nil {
		// Only ErrNotLeader proves the command never entered the log;
		// anything else (leadership lost mid-commit, a timeout) leaves
		// its fate unknown and must not be retried elsewhere.
		status := http.StatusServiceUnavailable
		if errors.Is(err, raftnode.ErrNotLeader) {
			status = http.StatusMisdirectedRequest
		}
		http.Error(w, err.Error(), status)
		return
	}
	if res.Object != nil {
		var err error
		if res.Value, err = json.Marshal(res.Object); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	writeJSON(w, res)
}

func (n *Node) serveReadIndex(w http.ResponseWriter, r *http.Request) {
	if !n.IsLeader() {
		http.Error(w, "not the leader", http.StatusMisdirectedRequest)
		return
	}
	idx, err := n.raft.ReadIndex()
	if err != nil {
		http.Error(w, err.Error(), http.StatusMisdirectedRequest)
		return
	}
	writeJSON(w, map[string]uint64{"index": idx})
}

func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request) {
	var j joinBody
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&j); err != nil {
		http.Error(w, "join request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !n.IsLeader() {
		http.Error(w, "not the leader", http.StatusMisdirectedRequest)
		return
	}
	members, err := n.addMember(r.Context(), j.Member, j.Voter)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, members)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// call makes one node-to-node request and decodes a JSON answer into out.
// A 421 (the peer is not the leader) or a failure to connect is errRetry;
// a handshake this node refused (the peer is no member it knows) is an
// error of its own; a request that was sent but got no answer is
// ErrUnknownOutcome (a leader that refuses this node's certificate
// answers so too: in TLS 1.3 the client learns of it after sending).
func (n *Node) call(ctx context.Context, method, url string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := n.raft.HTTPClient().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Debug("forward to leader", "url", url, "err", err)
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial":
			return errRetry
		case errors.Is(err, raftnode.ErrHandshake):
			return fmt.Errorf("cluster: forward to the leader: %w", err)
		}
		return fmt.Errorf("%w: %v", site.ErrUnknownOutcome, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxCommand))
	switch {
	case resp.StatusCode == http.StatusMisdirectedRequest:
		return errRetry
	case resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", site.ErrUnknownOutcome, strings.TrimSpace(string(msg)))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("cluster: the leader answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(msg, out)
}

func (n *Node) forwardCommit(ctx context.Context, leader string, cmd []byte) (site.Result, error) {
	var r site.Result
	if err := n.call(ctx, http.MethodPost, leader+pathApply, cmd, &r); err != nil {
		return site.Result{}, err
	}
	return r, nil
}

func (n *Node) forwardReadIndex(ctx context.Context, leader string) (uint64, error) {
	var out struct{ Index uint64 }
	if err := n.call(ctx, http.MethodGet, leader+pathReadIndex, nil, &out); err != nil {
		return 0, err
	}
	return out.Index, nil
}

func (n *Node) forwardJoin(ctx context.Context, leader string, j joinBody) ([]store.Member, error) {
	body, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	var members []store.Member
	if err := n.call(ctx, http.MethodPost, leader+pathJoin, body, &members); err != nil {
		return nil, err
	}
	return members, nil
}
