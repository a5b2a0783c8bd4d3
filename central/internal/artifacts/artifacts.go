// Package artifacts keeps every artifact of central's catalogue (package
// store: the records) on every central node (package internal/artifact:
// the bytes), so that whichever node a site reaches serves it, and a node
// lost loses no artifact.
//
// Each node runs an artifact.Replicator over its own store,
// <data-dir>/artifacts. Its plan is the whole catalogue; the sources of
// an artifact are the other members recorded as holding it, over the
// Raft port's mutual TLS (the Peer handler, GET
// /internal/artifacts/{sha256}, which any node serves from its store with
// Range), and, on the leader only, the upstream URL it was registered
// with: so an upstream artifact crosses the WAN once, and the followers
// copy it from a peer. A node whose copy is whole and verified records
// itself as a holder (store cmdRecordArtifact); a follower, which cannot
// propose, asks the leader to (the Peer handler's leader-only routes,
// which take the node's id from its certificate, never from the request).
// What the catalogue no longer holds is removed, but not an upload under
// way or just recorded (Node.Upload keeps its digest a while), and the
// replicator is woken each time the catalogue changes or this node starts
// to lead.
//
// Node.Upload is the API's upload: the bytes go into this node's store
// (verified against the digest the uploader says), then the record is
// made through the leader. Node.Sent counts what the API sent of an
// artifact to a site: at once in the node's metrics, and in the
// replicated store in batches (store cmdCountArtifactSent).
package artifacts

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/central/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/backoff"
)

// Cluster is the node of a replicated central that the artifacts need
// (*cluster.Node).
type Cluster interface {
	ID() string
	// IsLeader reports whether this node leads (it may propose).
	IsLeader() bool
	// LeaderInternal is the leader's base URL on its Raft port, "" when
	// no leader is known; HTTPClient reaches it, and every member's.
	LeaderInternal() string
	HTTPClient() *http.Client
	OnLeadership(fn func(leader bool))
}

// SingleNode is the id a single central (no cluster) records itself as
// holding artifacts under.
const SingleNode = "central"

// Config configures a Node.
type Config struct {
	// DB is central's store: the catalogue and the member records.
	DB *store.DB
	// Dir is this node's artifact directory (artifact.Open).
	Dir string
	// Cluster is this node's membership of a replicated central; nil for
	// a single central, which leads itself and has no peers.
	Cluster Cluster
	// Registry receives the metrics; nil keeps them private.
	Registry prometheus.Registerer
	// Limit caps the bandwidth of fetches from upstream URLs; nil: no
	// cap.
	Limit *rate.Limiter
	// Interval is the longest wait between two replication passes; 0 is
	// the replicator's default (10 s). Changes of the catalogue start a
	// pass at once.
	Interval time.Duration
	// Upstream fetches registered URLs; nil is a client with the
	// default transport and no overall timeout (a fetch that stalls is
	// ended by artifact.FetchOptions.Stall).
	Upstream *http.Client
	// Retry spaces the tries of an artifact whose fetch failed; zero is
	// the replicator's default (1 s doubling to a minute).
	Retry backoff.Exponential
	// Hold is how long an upload's digest stays out of the garbage once
	// the upload ended: time for its record to reach this node's store.
	// 0 is DefaultHold.
	Hold time.Duration
	Log  *slog.Logger
}

// DefaultHold is Config.Hold's default.
const DefaultHold = 2 * time.Minute

// Node keeps this node's artifacts.
type Node struct {
	db       *store.DB
	store    *artifact.Store
	self     string
	cluster  Cluster
	log      *slog.Logger
	repl     *artifact.Replicator
	upstream *http.Client
	hold     time.Duration
	now      func() time.Time
	m        *metrics

	wake     chan struct{} // starts a replication pass
	sentWake chan struct{} // starts a flush of the counts of bytes sent

	mu sync.Mutex
	// held are digests not to remove before a time: uploads under way
	// (the zero time: until released) and just made.
	held map[artifact.Digest]time.Time
	// known are the digests catalogued at the last pass, so that a
	// deleted one's partial fetch is removed too.
	known map[artifact.Digest]bool
	// sent are the bytes sent to sites not yet in the store.
	sent map[sentKey]int64
	// corruptUpstream counts the transfers from an artifact's upstream
	// URL thrown away: past maxCorruptUpstream the URL is not fetched
	// again (it does not serve what was registered).
	corruptUpstream map[artifact.Digest]int
}

// maxCorruptUpstream is how many corrupt transfers from an upstream URL
// central takes before it stops fetching it: each is a whole transfer
// over the WAN.
const maxCorruptUpstream = 3

type sentKey struct {
	site   string
	digest artifact.Digest
}

// New opens the node's artifact store; Run keeps it.
func New(cfg Config) (*Node, error) {
	st, err := artifact.Open(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	n := &Node{db: cfg.DB, store: st, self: SingleNode, cluster: cfg.Cluster, log: cfg.Log, upstream: cfg.Upstream, hold: cfg.Hold, now: time.Now,
		wake: make(chan struct{}, 1), sentWake: make(chan struct{}, 1),
		held: map[artifact.Digest]time.Time{}, known: map[artifact.Digest]bool{}, sent: map[sentKey]int64{},
		corruptUpstream: map[artifact.Digest]int{}}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.cluster != nil {
		n.self = n.cluster.ID()
	}
	if n.upstream == nil {
		n.upstream = &http.Client{}
	}
	if n.hold <= 0 {
		n.hold = DefaultHold
	}
	n.repl = artifact.NewReplicator(artifact.ReplicatorConfig{
		Store: st, Plan: n.plan, Present: n.present, Removed: n.removed, Corrupt: n.corrupt,
		Wake: n.wake, Limit: cfg.Limit, Interval: cfg.Interval, Retry: cfg.Retry, Log: n.log.With("component", "artifacts"),
	})
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	n.m = newMetrics(n, reg)
	return n, nil
}

// Store is this node's artifact store.
func (n *Node) Store() *artifact.Store { return n.store }

// Self is the id this node is recorded under as a holder.
func (n *Node) Self() string { return n.self }

// Transfer is the fetch under way on this node, if any.
func (n *Node) Transfer() (artifact.Transfer, bool) { return n.repl.Current() }

// Problem is what keeps this node from fetching d, if anything: its
// upstream URL served other bytes too many times.
func (n *Node) Problem(d artifact.Digest) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k := n.corruptUpstream[d]; k >= maxCorruptUpstream {
		return fmt.Sprintf("its upstream URL served bytes that are not %s %d times: central no longer fetches it; delete the artifact and register the right URL or digest", d.Ref(), k)
	}
	return ""
}

// Run keeps the node's store as the catalogue says until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	if n.cluster != nil {
		n.cluster.OnLeadership(func(bool) { n.poke() })
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { n.watch(ctx); return nil })
	g.Go(func() error { return n.repl.Run(ctx) })
	g.Go(func() error { n.sendCounts(ctx); return nil })
	return g.Wait()
}

// watch wakes the replicator at each change of the catalogue.
func (n *Node) watch(ctx context.Context) {
	for {
		ch := n.db.WatchArtifacts()
		select {
		case <-ctx.Done():
			return
		case <-ch:
			n.poke()
		}
	}
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// leads reports whether this node may propose: a single central always.
func (n *Node) leads() bool { return n.cluster == nil || n.cluster.IsLeader() }

// ErrGone refuses an upload whose bytes were removed before they could be
// recorded (the artifact was being deleted meanwhile): retry it. It wraps
// store.ErrNotApplied, which the API answers 503.
var ErrGone = fmt.Errorf("%w: the upload was removed before it was recorded; retry it", store.ErrNotApplied)

// Upload stores the artifact r holds on this node, checked against want
// (if not empty) and size (if not negative), and records it with meta's
// name, description and type, uploaded by meta.CreatedBy (the token's
// name). It returns the record. The bytes stay on this node; the others
// copy them from it.
func (n *Node) Upload(ctx context.Context, r io.Reader, want artifact.Digest, size int64, meta store.Artifact) (*store.Artifact, error) {
	if want != "" {
		n.keep(want)
		defer n.release(want)
	}
	info, err := n.store.Put(ctx, r, want, size)
	if err != nil {
		return nil, err
	}
	if info.Digest != want {
		n.keep(info.Digest)
		defer n.release(info.Digest)
	}
	if _, ok := n.store.Stat(info.Digest); !ok {
		return nil, ErrGone
	}
	meta.Digest, meta.Size = info.Digest, info.Size
	meta.Source = store.ArtifactSource{Upload: meta.CreatedBy}
	meta.CreatedAt, meta.Nodes, meta.SentBytes = time.Now().UTC(), nil, nil
	rec, err := n.record(ctx, &meta, true)
	if err != nil {
		return nil, err
	}
	n.log.Info("artifact uploaded", "sha256", info.Digest, "size", info.Size, "name", meta.Name, "by", meta.CreatedBy)
	return rec, nil
}

// keep keeps d out of the garbage until release.
func (n *Node) keep(d artifact.Digest) {
	n.mu.Lock()
	n.held[d] = time.Time{}
	n.mu.Unlock()
}

// release keeps d out of the garbage for Config.Hold more.
func (n *Node) release(d artifact.Digest) {
	n.mu.Lock()
	n.held[d] = n.now().Add(n.hold)
	n.mu.Unlock()
}
