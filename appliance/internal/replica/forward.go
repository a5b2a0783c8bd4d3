package replica

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// Node-to-node endpoints. They are served under the API's listener (see
// InternalHandler) and authenticated by the cluster secret, not by API
// tokens.
const (
	pathApply     = "/v1/internal/apply"
	pathReadIndex = "/v1/internal/readindex"
	pathJoin      = "/v1/internal/join"
	headerSecret  = "X-Outpost-Cluster"

	// maxCommand bounds a forwarded command.
	maxCommand = 16 << 20
)

// errRetry means the peer asked did not take the request (it is not the
// leader, or it could not be reached at all): find the leader and retry.
var errRetry = errors.New("replica: not leader, retry")

// ErrUnknownOutcome means a forwarded write reached the leader but no
// answer came back: it may or may not have been applied. It is not
// retried, so that nothing is applied twice; the caller decides.
var ErrUnknownOutcome = errors.New("replica: the leader did not answer; the write may or may not have been applied")

// InternalPrefix is the path prefix InternalHandler serves.
const InternalPrefix = "/v1/internal/"

// InternalHandler serves the endpoints followers use to reach the leader.
func (n *Node) InternalHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathApply, n.serveApply)
	mux.HandleFunc("GET "+pathReadIndex, n.serveReadIndex)
	mux.HandleFunc("POST "+pathJoin, n.serveJoin)
	return n.authenticate(mux)
}

func (n *Node) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret := n.secret.Load()
		got, err := hex.DecodeString(r.Header.Get(headerSecret))
		if secret == nil || err != nil || subtle.ConstantTimeCompare(got, *secret) != 1 {
			http.Error(w, "cluster secret missing or wrong", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (n *Node) serveApply(w http.ResponseWriter, r *http.Request) {
	cmd, err := io.ReadAll(io.LimitReader(r.Body, maxCommand+1))
	if err != nil || len(cmd) > maxCommand {
		http.Error(w, "command unreadable or too large", http.StatusBadRequest)
		return
	}
	if !n.IsLeader() {
		http.Error(w, "not the leader", http.StatusMisdirectedRequest)
		return
	}
	res, err := n.ApplyLocal(r.Context(), cmd)
	if err != nil && res.Err == nil {
		// Only ErrNotLeader proves the command never entered the log;
		// anything else (leadership lost mid-commit, a timeout) leaves
		// its fate unknown and must not be retried elsewhere.
		status := http.StatusServiceUnavailable
		if errors.Is(err, raft.ErrNotLeader) {
			status = http.StatusMisdirectedRequest
		}
		http.Error(w, err.Error(), status)
		return
	}
	if res.Object != nil {
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
	idx, err := n.ReadIndex()
	if err != nil {
		http.Error(w, err.Error(), http.StatusMisdirectedRequest)
		return
	}
	writeJSON(w, map[string]uint64{"index": idx})
}

func (n *Node) serveJoin(w http.ResponseWriter, r *http.Request) {
	var m store.Member
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&m); err != nil {
		http.Error(w, "join request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if !n.IsLeader() {
		http.Error(w, "not the leader", http.StatusMisdirectedRequest)
		return
	}
	if err := n.AddVoter(r.Context(), m); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]string{"status": "joined"})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// call makes one node-to-node request and decodes a JSON answer into out.
// A 421 (the peer is not the leader) or a failure to connect is errRetry;
// a request that was sent but got no answer is ErrUnknownOutcome.
func (n *Node) call(ctx context.Context, method, url string, body []byte, out any) error {
	secret := n.secret.Load()
	if secret == nil {
		return fmt.Errorf("replica: forward to leader: no cluster secret yet")
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set(headerSecret, hex.EncodeToString(*secret))
	resp, err := n.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Debug("forward to leader", "url", url, "err", err)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return errRetry
		}
		return fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxCommand))
	switch {
	case resp.StatusCode == http.StatusMisdirectedRequest:
		return errRetry
	case resp.StatusCode == http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s", ErrUnknownOutcome, strings.TrimSpace(string(msg)))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("replica: leader answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(msg, out)
}

func (n *Node) forwardApply(ctx context.Context, leader string, cmd []byte) (Result, error) {
	var r Result
	if err := n.call(ctx, http.MethodPost, leader+pathApply, cmd, &r); err != nil {
		return Result{}, err
	}
	if r.Err != nil {
		return r, r.Err
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

func (n *Node) forwardJoin(ctx context.Context, leader string, m store.Member) error {
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return n.call(ctx, http.MethodPost, leader+pathJoin, body, nil)
}
