package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/testwait"
)

// TestGroupCommit queues commands while a commit is under way: the next
// transaction applies them all, each caller gets its own command's
// result, and a refusal among them changes nothing of the others.
func TestGroupCommit(t *testing.T) {
	db, _ := openTest(t)
	if _, err := db.CreateSite("s1", "", HashSecret("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutDesired("s1", KindOrder, "placed", json.RawMessage(`{"action":"power_on"}`)); err != nil {
		t.Fatal(err)
	}
	db.gmu.Lock()
	db.committing = true // as if a commit were under way
	db.gmu.Unlock()

	const n = 8
	revs := make([]uint64, n)
	errc := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			obj := json.RawMessage(fmt.Sprintf(`{"action":"power_on","n":%d}`, i))
			key := fmt.Sprintf("o%d", i)
			if i == n/2 {
				key = "placed" // differs from the order placed: refused
			}
			revs[i], errc[i] = db.PutDesired("s1", KindOrder, key, obj)
		})
	}
	testwait.For(t, "every command queued", 30*time.Second, func() bool {
		db.gmu.Lock()
		defer db.gmu.Unlock()
		return len(db.queue) == n
	})
	db.commitQueued() // the commit under way ends: this is the next
	wg.Wait()

	seen := map[uint64]bool{}
	for i := range n {
		if i == n/2 {
			if !errors.Is(errc[i], errs.ErrConflict) {
				t.Errorf("the changed order: %v, want a conflict", errc[i])
			}
			continue
		}
		if errc[i] != nil {
			t.Fatalf("command %d: %v", i, errc[i])
		}
		seen[revs[i]] = true
		got, err := db.NextRevisions("s1", revs[i]-1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if key := got[0].Changes[0].Key; key != fmt.Sprintf("o%d", i) {
			t.Errorf("command %d got revision %d, which carries %s", i, revs[i], key)
		}
	}
	for rev := uint64(2); rev <= n; rev++ {
		if !seen[rev] {
			t.Errorf("no command got revision %d (got %v)", rev, revs)
		}
	}
	db.gmu.Lock()
	defer db.gmu.Unlock()
	if db.committing || len(db.queue) != 0 {
		t.Errorf("after the group: committing %v, %d queued", db.committing, len(db.queue))
	}
}

// TestGroupCommitConcurrent has many writers at once: every write is
// applied exactly once, with dense revisions per site.
func TestGroupCommitConcurrent(t *testing.T) {
	db, _ := openTest(t)
	const sites, writers, each = 4, 16, 25
	for s := range sites {
		if _, err := db.CreateSite(fmt.Sprintf("s%d", s), "", HashSecret("x")); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	got := map[string]map[uint64]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			site := fmt.Sprintf("s%d", w%sites)
			for i := range each {
				rev, err := db.PutDesired(site, KindOrder, fmt.Sprintf("w%d-%d", w, i), json.RawMessage(`{"action":"power_on"}`))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if got[site] == nil {
					got[site] = map[uint64]bool{}
				}
				if got[site][rev] {
					t.Errorf("%s: revision %d returned twice", site, rev)
				}
				got[site][rev] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for site, revs := range got {
		want := writers / sites * each
		for rev := uint64(1); rev <= uint64(want); rev++ {
			if !revs[rev] {
				t.Errorf("%s: no write got revision %d", site, rev)
			}
		}
		items, err := db.ListDesired(site, KindOrder)
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != want {
			t.Errorf("%s holds %d orders, want %d", site, len(items), want)
		}
	}
}

// TestWatchDesiredPerSite: a commit wakes its site's watchers alone, so
// that an order costs central one session's wake, not the fleet's.
func TestWatchDesiredPerSite(t *testing.T) {
	db, _ := openTest(t)
	for _, id := range []string{"s1", "s2"} {
		if _, err := db.CreateSite(id, "", HashSecret("x")); err != nil {
			t.Fatal(err)
		}
	}
	w1, w2 := db.WatchDesired("s1"), db.WatchDesired("s2")
	if _, err := db.PutDesired("s1", KindOrder, "o1", json.RawMessage(`{"action":"power_on"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w1:
	default:
		t.Error("s1's order did not wake s1's watcher")
	}
	select {
	case <-w2:
		t.Error("s1's order woke s2's watcher")
	default:
	}
}
