package artifact

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/outposthq/outpost/internal/backoff"
)

// Want is an artifact a node should hold.
type Want struct {
	Info
	// Sources are where to fetch it, in order of preference: peers that
	// hold it before anything past the site. None: nobody has it yet, so
	// the node waits.
	Sources []Source
	// Recorded says the node is already recorded as holding it; if it
	// holds it and is not, the replicator reports it (Config.Present).
	Recorded bool
}

// Plan is what a node should do, as its caller sees it from the
// replicated state.
type Plan struct {
	Want []Want
	// Garbage lists digests the node should no longer hold: no name
	// points at them and their grace period is over.
	Garbage []Digest
}

// ReplicatorConfig configures a Replicator.
type ReplicatorConfig struct {
	Store *Store
	// Plan says what to hold now. It is asked at each pass.
	Plan func(ctx context.Context) (Plan, error)
	// Present records that this node holds an artifact (through Raft);
	// Removed that it no longer does. Both are required. An error is
	// retried at the next pass.
	Present func(ctx context.Context, i Info) error
	Removed func(ctx context.Context, d Digest) error
	// Corrupt, if set, is told of each transfer thrown away because its
	// bytes did not hash to their digest (an event, say).
	Corrupt func(ctx context.Context, err *CorruptError)
	// Progress, if set, is told of a transfer's progress, about once a
	// MiB.
	Progress func(d Digest, src Source, held, size int64)
	// Failed, if set, is told of each fetch from a source that failed
	// otherwise than corrupt (the source refused, the transfer broke or
	// stalled); the next source, or the next pass, tries again.
	Failed func(ctx context.Context, d Digest, src Source, err error)
	// Wake starts a pass at once (the replicated state changed).
	Wake <-chan struct{}
	// Limit caps the bandwidth of transfers from WAN sources; nil: no cap.
	Limit *rate.Limiter
	// Interval is the longest wait between passes; 0 means 10 s.
	Interval time.Duration
	// Retry spaces the tries of an artifact that failed; zero means
	// 1 s doubling to a minute.
	Retry backoff.Exponential
	// Log receives a line per transfer and failure; nil discards.
	Log *slog.Logger
}

// Replicator keeps a node's store as its Plan says: it fetches what is
// missing (one artifact at a time, resuming broken transfers), reports
// each arrival, and removes the garbage.
type Replicator struct {
	cfg ReplicatorConfig
	log *slog.Logger

	mu      sync.Mutex
	current *Transfer
	retry   map[Digest]retryState

	wanBytes, peerBytes, corrupt atomic.Int64
}

type retryState struct {
	tries int
	next  time.Time
}

// Transfer is a fetch in progress.
type Transfer struct {
	Digest  Digest    `json:"sha256"`
	Source  string    `json:"source"`
	Held    int64     `json:"held_bytes"`
	Size    int64     `json:"size_bytes"`
	Started time.Time `json:"started"`
}

// Stats are a replicator's counters since it started.
type Stats struct {
	// WANBytes and PeerBytes are the bytes fetched from sources past the
	// site and from peers.
	WANBytes, PeerBytes int64
	// Corrupt counts transfers thrown away.
	Corrupt int64
}

// NewReplicator returns a replicator; Run runs it.
func NewReplicator(cfg ReplicatorConfig) *Replicator {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Retry == (backoff.Exponential{}) {
		cfg.Retry = backoff.Exponential{Base: time.Second, Max: time.Minute}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Replicator{cfg: cfg, log: log, retry: map[Digest]retryState{}}
}

// Stats returns the replicator's counters.
func (r *Replicator) Stats() Stats {
	return Stats{WANBytes: r.wanBytes.Load(), PeerBytes: r.peerBytes.Load(), Corrupt: r.corrupt.Load()}
}

// Current is the transfer in progress, if any.
func (r *Replicator) Current() (Transfer, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current == nil {
		return Transfer{}, false
	}
	return *r.current, true
}

// Run makes passes until ctx ends.
func (r *Replicator) Run(ctx context.Context) error {
	for {
		wait := r.pass(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.cfg.Wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// pass does one round of the plan and returns how long to wait before
// the next.
func (r *Replicator) pass(ctx context.Context) time.Duration {
	wait := r.cfg.Interval
	plan, err := r.cfg.Plan(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("artifacts: no plan", "err", err)
		}
		return min(wait, 2*time.Second)
	}
	for _, d := range plan.Garbage {
		r.removeGarbage(ctx, d)
	}
	r.prune(plan.Want)
	for _, w := range plan.Want {
		if ctx.Err() != nil {
			return wait
		}
		if _, ok := r.cfg.Store.Stat(w.Digest); ok {
			if !w.Recorded {
				if err := r.cfg.Present(ctx, w.Info); err != nil {
					r.log.Debug("artifacts: not recorded yet", "sha256", w.Digest, "err", err)
					wait = min(wait, 2*time.Second)
				}
			}
			continue
		}
		if len(w.Sources) == 0 {
			continue // nobody has it yet: a Wake comes when someone does
		}
		if d := r.due(w.Digest); d > 0 {
			wait = min(wait, d)
			continue
		}
		if r.fetch(ctx, w) {
			r.forget(w.Digest)
			if err := r.cfg.Present(ctx, w.Info); err != nil {
				r.log.Debug("artifacts: not recorded yet", "sha256", w.Digest, "err", err)
				wait = min(wait, 2*time.Second)
			}
		} else {
			wait = min(wait, r.failed(w.Digest))
		}
	}
	return wait
}

func (r *Replicator) removeGarbage(ctx context.Context, d Digest) {
	if _, ok := r.cfg.Store.Stat(d); ok || r.cfg.Store.Partial(d) > 0 {
		if err := r.cfg.Store.Remove(d); err != nil {
			r.log.Warn("artifacts: cannot remove", "sha256", d, "err", err)
			return
		}
		r.log.Info("artifacts: removed, no name points at it", "sha256", d)
	}
	if err := r.cfg.Removed(ctx, d); err != nil {
		r.log.Debug("artifacts: removal not recorded yet", "sha256", d, "err", err)
	}
}

// fetch tries w's sources in order and reports whether one gave it.
func (r *Replicator) fetch(ctx context.Context, w Want) bool {
	for _, src := range w.Sources {
		held := r.cfg.Store.Partial(w.Digest)
		r.mu.Lock()
		r.current = &Transfer{Digest: w.Digest, Source: src.Name, Held: held, Size: w.Size, Started: time.Now()}
		r.mu.Unlock()
		opt := FetchOptions{Progress: func(held, size int64) {
			r.mu.Lock()
			if r.current != nil {
				r.current.Held = held
			}
			r.mu.Unlock()
			if r.cfg.Progress != nil {
				r.cfg.Progress(w.Digest, src, held, size)
			}
		}}
		if src.WAN {
			opt.Limit = r.cfg.Limit
		}
		r.log.Info("artifacts: fetching", "sha256", w.Digest, "size", w.Size, "source", src.Name, "resume_from", held)
		n, err := r.cfg.Store.Fetch(ctx, src, w.Digest, w.Size, opt)
		if src.WAN {
			r.wanBytes.Add(n)
		} else {
			r.peerBytes.Add(n)
		}
		r.mu.Lock()
		r.current = nil
		r.mu.Unlock()
		var corrupt *CorruptError
		switch {
		case err == nil:
			r.log.Info("artifacts: fetched and verified", "sha256", w.Digest, "size", w.Size, "source", src.Name, "bytes", n)
			return true
		case errors.As(err, &corrupt):
			r.corrupt.Add(1)
			r.log.Warn("artifacts: corrupt transfer discarded", "sha256", w.Digest, "source", src.Name, "err", err)
			if r.cfg.Corrupt != nil {
				r.cfg.Corrupt(ctx, corrupt)
			}
		case ctx.Err() != nil:
			return false
		default:
			r.log.Warn("artifacts: fetch failed", "sha256", w.Digest, "source", src.Name, "bytes", n, "err", err)
			if r.cfg.Failed != nil {
				r.cfg.Failed(ctx, w.Digest, src, err)
			}
		}
	}
	return false
}

func (r *Replicator) due(d Digest) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.retry[d]
	if !ok {
		return 0
	}
	return time.Until(st.next)
}

func (r *Replicator) failed(d Digest) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.retry[d]
	st.tries++
	wait := r.cfg.Retry.Wait(st.tries)
	st.next = time.Now().Add(wait)
	r.retry[d] = st
	return wait
}

// prune forgets the failures of artifacts the plan no longer wants.
func (r *Replicator) prune(want []Want) {
	keep := make(map[Digest]bool, len(want))
	for _, w := range want {
		keep[w.Digest] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for d := range r.retry {
		if !keep[d] {
			delete(r.retry, d)
		}
	}
}

func (r *Replicator) forget(d Digest) {
	r.mu.Lock()
	delete(r.retry, d)
	r.mu.Unlock()
}
