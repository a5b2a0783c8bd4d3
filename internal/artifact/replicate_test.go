package artifact

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/outposthq/outpost/internal/backoff"
	"github.com/outposthq/outpost/internal/testwait"
)

// site is the replicated state a replicator's callbacks stand for: what
// the node should hold, where from, and what it was recorded holding.
type site struct {
	mu       sync.Mutex
	want     []Want
	garbage  []Digest
	recorded map[Digest]bool
	plans    int // Plan calls
	refuse   int // the next Present calls to fail
	present  []Digest
	removed  []Digest
	corrupt  []*CorruptError
	progress map[Digest]int64 // the last progress's held bytes
}

func newSite() *site { return &site{recorded: map[Digest]bool{}, progress: map[Digest]int64{}} }

func (s *site) plan(ctx context.Context) (Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plans++
	p := Plan{Garbage: slices.Clone(s.garbage)}
	for _, w := range s.want {
		w.Recorded = s.recorded[w.Digest]
		p.Want = append(p.Want, w)
	}
	return p, nil
}

func (s *site) setWant(w ...Want) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = w
}

// read runs fn under the site's lock.
func (s *site) read(fn func(s *site)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s)
}

func (s *site) planCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.plans
}

func (s *site) presentOnes() []Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.present)
}

// startReplicator runs a replicator of st over store until the test ends.
func startReplicator(t *testing.T, st *site, store *Store, cfg ReplicatorConfig) *Replicator {
	t.Helper()
	cfg.Store = store
	cfg.Plan = st.plan
	cfg.Present = func(ctx context.Context, i Info) error {
		st.mu.Lock()
		defer st.mu.Unlock()
		if st.refuse > 0 {
			st.refuse--
			return errors.New("no leader")
		}
		st.present = append(st.present, i.Digest)
		st.recorded[i.Digest] = true
		return nil
	}
	cfg.Removed = func(ctx context.Context, d Digest) error {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.removed = append(st.removed, d)
		st.garbage = slices.DeleteFunc(st.garbage, func(g Digest) bool { return g == d })
		return nil
	}
	cfg.Corrupt = func(ctx context.Context, err *CorruptError) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.corrupt = append(st.corrupt, err)
	}
	cfg.Progress = func(d Digest, src Source, held, size int64) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.progress[d] = held
	}
	cfg.Log = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := NewReplicator(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// waitPresent waits for d to be reported present.
func waitPresent(t *testing.T, st *site, d Digest) {
	t.Helper()
	testwait.For(t, "the artifact reported present", 20*time.Second, func() bool {
		return slices.Contains(st.presentOnes(), d)
	})
}

// waitPasses waits for n more passes of the replicator.
func waitPasses(t *testing.T, st *site, n int) {
	t.Helper()
	from := st.planCount()
	testwait.For(t, "more passes", 20*time.Second, func() bool { return st.planCount() >= from+n })
}

// The replicator fetches a missing artifact from the first source that
// gives it, in order, reports it present once, and counts the bytes by
// kind of source; a corrupt transfer is reported and the next source
// used.
func TestReplicatorFetches(t *testing.T) {
	data, d := blob(1<<20 + 5000)
	size := int64(len(data))
	tests := map[string]struct {
		first       fault
		firstWAN    bool
		wan, peer   int64
		corrupt     int
		firstAsked  int
		secondAsked int
	}{
		"first source down": {first: fault{status: 503}, wan: size, firstAsked: 1, secondAsked: 1},
		"first source corrupt": {first: fault{flip: true}, wan: size, peer: size, corrupt: 1,
			firstAsked: 1, secondAsked: 1},
		"first source cut: resumed from the second": {first: fault{cutAfter: 300 << 10}, wan: size - 300<<10,
			peer: 300 << 10, firstAsked: 1, secondAsked: 1},
		"first source good": {first: fault{}, peer: size, firstAsked: 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			peer, central := newOrigin(t, data, tt.first), newOrigin(t, data)
			wan := central.source("central")
			wan.WAN = true
			st := newSite()
			st.setWant(Want{Info: Info{Digest: d, Size: size}, Sources: []Source{peer.source("peer n2"), wan}})
			store := openStore(t)
			r := startReplicator(t, st, store, ReplicatorConfig{Interval: 10 * time.Millisecond,
				Retry: backoff.Exponential{Base: time.Hour, Max: time.Hour}})
			waitPresent(t, st, d)
			waitPasses(t, st, 3)
			if got := st.presentOnes(); !cmp.Equal(got, []Digest{d}) {
				t.Errorf("reported present %v, want once", got)
			}
			if b := contents(t, store, d); !bytes.Equal(b, data) {
				t.Fatal("the store holds other bytes than the artifact's")
			}
			if got, want := r.Stats(), (Stats{WANBytes: tt.wan, PeerBytes: tt.peer, Corrupt: int64(tt.corrupt)}); got != want {
				t.Errorf("Stats = %+v, want %+v", got, want)
			}
			if n, m := len(peer.requests()), len(central.requests()); n != tt.firstAsked || m != tt.secondAsked {
				t.Errorf("sources asked %d and %d times, want %d and %d", n, m, tt.firstAsked, tt.secondAsked)
			}
			st.read(func(st *site) {
				if len(st.corrupt) != tt.corrupt {
					t.Errorf("Corrupt told of %v, want %d", st.corrupt, tt.corrupt)
				}
				for _, c := range st.corrupt {
					if c.Want != d || c.Source != "peer n2" {
						t.Errorf("Corrupt told of %+v", c)
					}
				}
				if st.progress[d] != size {
					t.Errorf("last progress at %d bytes, want %d", st.progress[d], size)
				}
			})
			if _, ok := r.Current(); ok {
				t.Error("a transfer is still current")
			}
		})
	}
}

// What the node holds but is not recorded holding is reported, without
// a transfer; what is recorded is not reported again.
func TestReplicatorReportsHeld(t *testing.T) {
	data, d := blob(2000)
	other, o := blob(3000)
	store := openStore(t)
	for _, b := range [][]byte{data, other} {
		if _, err := store.Put(t.Context(), bytes.NewReader(b), "", -1); err != nil {
			t.Fatal(err)
		}
	}
	src := newOrigin(t, data)
	st := newSite()
	st.recorded[o] = true
	st.setWant(Want{Info: Info{Digest: d, Size: 2000}, Sources: []Source{src.source("central")}},
		Want{Info: Info{Digest: o, Size: 3000}})
	startReplicator(t, st, store, ReplicatorConfig{Interval: 10 * time.Millisecond})
	waitPresent(t, st, d)
	waitPasses(t, st, 3)
	if got := st.presentOnes(); !cmp.Equal(got, []Digest{d}) {
		t.Errorf("reported present %v, want only %s once", got, d.Short())
	}
	if n := len(src.requests()); n != 0 {
		t.Errorf("the source was asked %d times for what the node holds", n)
	}
}

// Garbage is removed, with its partial, and reported removed.
func TestReplicatorRemovesGarbage(t *testing.T) {
	data, d := blob(2000)
	_, p := blob(4000)
	store := openStore(t)
	if _, err := store.Put(t.Context(), bytes.NewReader(data), "", -1); err != nil {
		t.Fatal(err)
	}
	writePartial(t, store, p, []byte("some"))
	st := newSite()
	st.garbage = []Digest{d, p}
	startReplicator(t, st, store, ReplicatorConfig{Interval: 10 * time.Millisecond})
	testwait.For(t, "the garbage reported removed", 20*time.Second, func() bool {
		var n int
		st.read(func(st *site) { n = len(st.removed) })
		return n == 2
	})
	if _, ok := store.Stat(d); ok {
		t.Error("the artifact is still held")
	}
	if n := store.Partial(p); n != 0 {
		t.Errorf("the partial still holds %d bytes", n)
	}
	st.read(func(st *site) {
		if diff := cmp.Diff([]Digest{d, p}, st.removed); diff != "" {
			t.Errorf("removed (-want +got):\n%s", diff)
		}
	})
}

// A failed artifact is not tried again before its backoff, and is after
// it.
func TestReplicatorRetry(t *testing.T) {
	data, d := blob(5000)
	tests := map[string]struct {
		retry  backoff.Exponential
		passes int // passes to wait for before looking
		asked  int // requests by then
	}{
		"not before the backoff": {retry: backoff.Exponential{Base: time.Hour, Max: time.Hour}, passes: 5, asked: 1},
		"after it": {retry: backoff.Exponential{Base: 5 * time.Millisecond, Max: 10 * time.Millisecond},
			asked: 3},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			src := newOrigin(t, data, fault{status: 500}, fault{status: 500})
			st := newSite()
			st.setWant(Want{Info: Info{Digest: d, Size: 5000}, Sources: []Source{src.source("central")}})
			// Passes come every 10 ms, or sooner when a retry is due.
			startReplicator(t, st, openStore(t), ReplicatorConfig{Interval: 10 * time.Millisecond, Retry: tt.retry})
			if tt.passes > 0 {
				testwait.For(t, "the first try", 20*time.Second, func() bool { return len(src.requests()) == 1 })
				waitPasses(t, st, tt.passes)
			} else {
				waitPresent(t, st, d)
			}
			if n := len(src.requests()); n != tt.asked {
				t.Errorf("the source was asked %d times, want %d", n, tt.asked)
			}
		})
	}
}

// A retry comes when its backoff ends, not at the next interval.
func TestReplicatorRetryDue(t *testing.T) {
	data, d := blob(5000)
	src := newOrigin(t, data, fault{status: 500})
	st := newSite()
	st.setWant(Want{Info: Info{Digest: d, Size: 5000}, Sources: []Source{src.source("central")}})
	startReplicator(t, st, openStore(t), ReplicatorConfig{Interval: time.Hour,
		Retry: backoff.Exponential{Base: 5 * time.Millisecond, Max: 5 * time.Millisecond}})
	waitPresent(t, st, d)
	if n := len(src.requests()); n != 2 {
		t.Errorf("the source was asked %d times, want 2", n)
	}
}

// A wake starts a pass at once: a plan that changed is acted on without
// waiting for the interval.
func TestReplicatorWake(t *testing.T) {
	data, d := blob(5000)
	src := newOrigin(t, data)
	st := newSite()
	wake := make(chan struct{}, 1)
	startReplicator(t, st, openStore(t), ReplicatorConfig{Interval: time.Hour, Wake: wake})
	testwait.For(t, "the first pass", 20*time.Second, func() bool { return st.planCount() == 1 })
	st.setWant(Want{Info: Info{Digest: d, Size: 5000}, Sources: []Source{src.source("central")}})
	wake <- struct{}{}
	waitPresent(t, st, d)
}

// An artifact nobody holds yet (no sources) is waited for, not tried.
func TestReplicatorWaitsForASource(t *testing.T) {
	_, d := blob(5000)
	st := newSite()
	st.setWant(Want{Info: Info{Digest: d, Size: 5000}})
	r := startReplicator(t, st, openStore(t), ReplicatorConfig{Interval: 10 * time.Millisecond})
	waitPasses(t, st, 3)
	if got := st.presentOnes(); len(got) != 0 {
		t.Errorf("reported present %v", got)
	}
	if s := r.Stats(); s != (Stats{}) {
		t.Errorf("Stats = %+v", s)
	}
}

// A report of presence that fails (no leader) is made again at the next
// passes, without fetching again.
func TestReplicatorPresentRetried(t *testing.T) {
	data, d := blob(5000)
	src := newOrigin(t, data)
	st := newSite()
	st.refuse = 3
	st.setWant(Want{Info: Info{Digest: d, Size: 5000}, Sources: []Source{src.source("central")}})
	startReplicator(t, st, openStore(t), ReplicatorConfig{Interval: 10 * time.Millisecond})
	waitPresent(t, st, d)
	if n := len(src.requests()); n != 1 {
		t.Errorf("the source was asked %d times, want once", n)
	}
}
