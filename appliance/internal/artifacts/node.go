package artifacts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/artifact"
	"github.com/outposthq/outpost/internal/backoff"
)

// Site is what a node's replicator needs of the site: whether this node
// leads (only the leader pulls from past the site), and the proposals
// that record what it holds (package site's proposer).
type Site interface {
	IsLeader() bool
	RecordArtifact(ctx context.Context, node, sha256 string, size int64) error
	ForgetArtifact(ctx context.Context, node, sha256 string) error
	ReportArtifact(ctx context.Context, r site.ArtifactReport) error
}

// Central is where the leader pulls artifacts from.
type Central struct {
	// Bases are central's https base URLs (config.CentralBases), tried
	// in turn; none: the site has no central.
	Bases []string
	// Site is the site's id at central.
	Site string
	// CredentialFile holds the site's credential, read again at each
	// pass; it is sent in the Authorization header and never logged.
	CredentialFile string
	// Client reaches central, verifying it as the sync client does.
	Client *http.Client
}

// Config configures a Node.
type Config struct {
	// ID is this node's id in the site.
	ID string
	// Store is this node's artifact store.
	Store *artifact.Store
	// DB is this node's copy of the site's store: the records, images
	// and members are read from it.
	DB *store.DB
	// Site records what this node holds.
	Site Site
	// Peers reaches the other nodes' InternalPath over the Raft port's
	// mutual TLS (cluster.Node.PeerClient).
	Peers *http.Client
	// Central is where the leader pulls from.
	Central Central
	// Upstream fetches images from their upstream URLs; nil: a client
	// that takes proxies from the environment.
	Upstream *http.Client
	// ArtifactDir is the directory of images that are files (placed by
	// hand, or by make images): a node copies such an image into its
	// store from there first.
	ArtifactDir string
	// Grace is how long an artifact no image points at is kept.
	Grace time.Duration
	// WANLimit caps the bandwidth of pulls from past the site, in bytes
	// per second; 0 is no cap.
	WANLimit int64
	// Interval is the longest wait between passes; 0: 10 s.
	Interval time.Duration
	// Retry spaces the tries of an artifact that failed; zero: 1 s
	// doubling to 30 s.
	Retry backoff.Exponential
	// Log receives a line per transfer and failure; nil discards.
	Log *slog.Logger
	// Now is the clock of the grace period; nil: time.Now.
	Now func() time.Time
}

// Node keeps this node's artifacts as the site's records say.
type Node struct {
	cfg      Config
	log      *slog.Logger
	rep      *artifact.Replicator
	wake     chan struct{}
	reports  chan site.ArtifactReport
	files    *http.Client
	upstream *http.Client

	mu       sync.Mutex
	progress map[artifact.Digest]reported // the last progress reported per pull
	failures map[artifact.Digest]reported // the last failure reported per digest
	gcAt     time.Time                    // when the next garbage is due (zero: none known)
}

// reported is a report made, for throttling.
type reported struct {
	percent int
	message string
	at      time.Time
}

// New checks cfg and returns the node's replicator; Run runs it.
func New(cfg Config) (*Node, error) {
	if cfg.ID == "" || cfg.Store == nil || cfg.DB == nil || cfg.Site == nil {
		return nil, errors.New("artifacts: a node id, its artifact store, its site store and the site are required")
	}
	if cfg.Grace <= 0 {
		return nil, fmt.Errorf("artifacts: grace %v: must be positive", cfg.Grace)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Retry == (backoff.Exponential{}) {
		cfg.Retry = backoff.Exponential{Base: time.Second, Max: 30 * time.Second}
	}
	n := &Node{cfg: cfg, log: cfg.Log, wake: make(chan struct{}, 1), reports: make(chan site.ArtifactReport, 64),
		progress: map[artifact.Digest]reported{}, failures: map[artifact.Digest]reported{}}
	n.upstream = cfg.Upstream
	if n.upstream == nil {
		n.upstream = &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}
	}
	if cfg.ArtifactDir != "" {
		n.files = &http.Client{Transport: http.NewFileTransport(http.Dir(cfg.ArtifactDir))}
	}
	var limit *rate.Limiter
	if cfg.WANLimit > 0 {
		limit = rate.NewLimiter(rate.Limit(cfg.WANLimit), int(min(cfg.WANLimit, 1<<20)))
	}
	n.rep = artifact.NewReplicator(artifact.ReplicatorConfig{
		Store: cfg.Store, Plan: n.Plan, Present: n.present, Removed: n.removed,
		Corrupt: n.corrupt, Progress: n.onProgress, Failed: n.failed,
		Wake: n.wake, Limit: limit, Interval: cfg.Interval, Retry: cfg.Retry, Log: cfg.Log,
	})
	return n, nil
}

// Run replicates until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { n.watch(ctx); return nil })
	g.Go(func() error { n.report(ctx); return nil })
	g.Go(func() error { return n.rep.Run(ctx) })
	return g.Wait()
}

// Stats are the replicator's counters.
func (n *Node) Stats() artifact.Stats { return n.rep.Stats() }

// watch wakes the replicator when what it follows changes: the records
// or images (the store's artifact generation), or this node's
// leadership.
func (n *Node) watch(ctx context.Context) {
	gen, leader := n.generation(), n.cfg.Site.IsLeader()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.cfg.DB.ChangedBesidesLeases(): // a lease moves no generation
		case <-tick.C:
		}
		g, l := n.generation(), n.cfg.Site.IsLeader()
		if g != gen || l != leader || n.garbageDue() {
			gen, leader = g, l
			n.poke()
		}
	}
}

// garbageDue reports whether garbage a plan saw coming is due now.
func (n *Node) garbageDue() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.gcAt.IsZero() || n.cfg.Now().Before(n.gcAt) {
		return false
	}
	n.gcAt = time.Time{}
	return true
}

// poke starts a pass of the replicator at once.
func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Node) generation() uint64 {
	var g uint64
	_ = n.cfg.DB.View(func(tx *store.Tx) error { g = tx.ArtifactGeneration(); return nil })
	return g
}

// present records that this node holds i, verified.
func (n *Node) present(ctx context.Context, i artifact.Info) error {
	size, ok := n.cfg.Store.Stat(i.Digest)
	if !ok {
		return fmt.Errorf("artifacts: %s is not held here", i.Digest.Short())
	}
	return n.cfg.Site.RecordArtifact(ctx, n.cfg.ID, string(i.Digest), size)
}

// removed records that this node removed d, if the site records it as
// holding d.
func (n *Node) removed(ctx context.Context, d artifact.Digest) error {
	held := false
	_ = n.cfg.DB.View(func(tx *store.Tx) error {
		rec, err := store.Get[store.Artifact](tx, string(d))
		held = err == nil && rec.HeldBy(n.cfg.ID)
		return nil
	})
	if !held {
		return nil
	}
	return n.cfg.Site.ForgetArtifact(ctx, n.cfg.ID, string(d))
}
