package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/tracing"
)

// Spans. Each node keeps the spans it recorded (and those its agents
// sent it) in its own tracing.Store, never through Raft. Every node
// serves its store to the other members on the Raft port, over the same
// mutual TLS as Raft: the leader gathers the site's spans from every node
// to forward them to central (the sync client), and a trace from every
// node to show it (the API, the console).
const (
	// pathSpans answers the spans numbered after ?after= and after the
	// node's forwarding cursor, at most ?limit=.
	pathSpans = "/v1/internal/spans"
	// pathSpansForwarded moves the node's forwarding cursor.
	pathSpansForwarded = "/v1/internal/spans/forwarded"
	// pathTraces + trace id answers the node's spans of a trace.
	pathTraces = "/v1/internal/traces/"

	// maxSpansAnswer bounds the spans of one answer.
	maxSpansAnswer = 1000
	// spanCallTimeout bounds one call to a node: a dead node's spans
	// wait for it, and do not hold up the others'.
	spanCallTimeout = 5 * time.Second
	// maxSpansBody bounds an answer read.
	maxSpansBody = 64 << 20
)

// ErrNoSpanStore means a node has no span store (tracing is not started
// on it yet).
var ErrNoSpanStore = errors.New("cluster: this node keeps no spans")

// SetSpanStore makes s this node's span store, served to the other
// members; until it is set, a node answers that it keeps no spans.
func (n *Node) SetSpanStore(s *tracing.Store) { n.spans.Store(s) }

// NodeSpans are spans of one node of the site (site.NodeSpans).
type NodeSpans = site.NodeSpans

func (n *Node) serveSpans(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	ns, err := n.localPending(after, limit)
	if err != nil {
		http.Error(w, err.Error(), spanStatus(err))
		return
	}
	writeJSON(w, ns)
}

func (n *Node) serveSpansForwarded(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&body); err != nil {
		http.Error(w, "forwarded cursor: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := n.localForwarded(body.Seq); err != nil {
		http.Error(w, err.Error(), spanStatus(err))
		return
	}
	writeJSON(w, body)
}

func (n *Node) serveTrace(w http.ResponseWriter, r *http.Request) {
	s := n.spans.Load()
	if s == nil {
		http.Error(w, ErrNoSpanStore.Error(), http.StatusServiceUnavailable)
		return
	}
	spans, err := s.Trace(r.PathValue("id"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, spans)
}

func spanStatus(err error) int {
	if errors.Is(err, ErrNoSpanStore) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// localPending reads this node's spans numbered after after and after
// its forwarding cursor, at most limit (maxSpansAnswer if it is not
// within 1 to maxSpansAnswer).
func (n *Node) localPending(after uint64, limit int) (NodeSpans, error) {
	s := n.spans.Load()
	if s == nil {
		return NodeSpans{}, ErrNoSpanStore
	}
	if limit <= 0 || limit > maxSpansAnswer {
		limit = maxSpansAnswer
	}
	fwd, err := s.Forwarded()
	if err != nil {
		return NodeSpans{}, err
	}
	spans, last, err := s.After(max(after, fwd), limit)
	if err != nil {
		return NodeSpans{}, err
	}
	return NodeSpans{Node: n.cfg.ID, Spans: spans, Last: last}, nil
}

func (n *Node) localForwarded(seq uint64) error {
	s := n.spans.Load()
	if s == nil {
		return ErrNoSpanStore
	}
	return s.SetForwarded(seq)
}

// peers lists the site's members, this node first.
func (n *Node) peers() ([]store.Member, error) {
	var ms []*store.Member
	if err := n.db.View(func(tx *store.Tx) (err error) {
		ms, err = store.List[store.Member](tx)
		return err
	}); err != nil {
		return nil, err
	}
	out := []store.Member{{ID: n.cfg.ID}}
	for _, m := range ms {
		if m.ID != n.cfg.ID {
			out = append(out, *m)
		}
	}
	return out, nil
}

// peerCall makes one call to member m's span endpoints and decodes its
// JSON answer into out.
func (n *Node) peerCall(ctx context.Context, m store.Member, method, path string, body []byte, out any) error {
	if n.peerClient == nil {
		return fmt.Errorf("node %s: no client for the other members", m.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, spanCallTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+m.RaftAddr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", m.ID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSpansBody))
	if err != nil {
		return fmt.Errorf("node %s: %w", m.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("node %s answered %s: %s", m.ID, resp.Status, strings.TrimSpace(string(data)))
	}
	return json.Unmarshal(data, out)
}

// PendingSpans gathers from every node of the site the spans it has not
// forwarded yet, at most limit of each node, numbered after after[node]
// (the spans already sent but not yet acknowledged). A node that cannot
// be reached is left out, its error returned beside what the others
// answered: its spans wait for it.
func (n *Node) PendingSpans(ctx context.Context, after map[string]uint64, limit int) ([]NodeSpans, error) {
	members, err := n.peers()
	if err != nil {
		return nil, err
	}
	out := make([]NodeSpans, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			if m.ID == n.cfg.ID {
				out[i], errs[i] = n.localPending(after[m.ID], limit)
				return
			}
			q := url.Values{"after": {strconv.FormatUint(after[m.ID], 10)}, "limit": {strconv.Itoa(limit)}}
			errs[i] = n.peerCall(ctx, m, http.MethodGet, pathSpans+"?"+q.Encode(), nil, &out[i])
			out[i].Node = m.ID
		})
	}
	wg.Wait()
	out = slices.DeleteFunc(out, func(ns NodeSpans) bool { return len(ns.Spans) == 0 })
	return out, errors.Join(errs...)
}

// SpansForwarded moves node's forwarding cursor to seq: its spans up to
// seq have reached central.
func (n *Node) SpansForwarded(ctx context.Context, node string, seq uint64) error {
	if node == n.cfg.ID {
		return n.localForwarded(seq)
	}
	members, err := n.peers()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(members, func(m store.Member) bool { return m.ID == node })
	if i < 0 {
		return fmt.Errorf("cluster: node %s is no member of the site", node)
	}
	body, _ := json.Marshal(map[string]uint64{"seq": seq})
	var ack map[string]uint64
	return n.peerCall(ctx, members[i], http.MethodPost, pathSpansForwarded, body, &ack)
}

// TraceSpans gathers the spans of a trace from every node of the site,
// by start. A node that cannot be reached is left out, named in the
// error returned beside the others' spans.
func (n *Node) TraceSpans(ctx context.Context, traceID string) ([]tracing.Span, error) {
	members, err := n.peers()
	if err != nil {
		return nil, err
	}
	parts := make([][]tracing.Span, len(members))
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Go(func() {
			if m.ID != n.cfg.ID {
				errs[i] = n.peerCall(ctx, m, http.MethodGet, pathTraces+url.PathEscape(traceID), nil, &parts[i])
				return
			}
			s := n.spans.Load()
			if s == nil {
				errs[i] = ErrNoSpanStore
				return
			}
			parts[i], errs[i] = s.Trace(traceID)
		})
	}
	wg.Wait()
	var out []tracing.Span
	seen := map[string]bool{}
	for _, p := range parts {
		for _, sp := range p {
			if !seen[sp.SpanID] {
				seen[sp.SpanID] = true
				out = append(out, sp)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b tracing.Span) int { return a.Start.Compare(b.Start) })
	return out, errors.Join(errs...)
}
