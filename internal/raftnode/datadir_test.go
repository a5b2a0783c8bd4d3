package raftnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/outposthq/outpost/internal/boltfile"
	"github.com/outposthq/outpost/internal/testdir"
)

// setKeys proposes key<from>..key<to-1> = v on m, one command each.
func setKeys(t *testing.T, m *member, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, _, err := m.node.Propose(t.Context(), set(fmt.Sprintf("key%d", i), "v")); err != nil {
			t.Fatal(err)
		}
	}
}

// checkKeys fails the test unless m's store holds key0..key<n-1>.
func checkKeys(t *testing.T, m *member, n int) {
	t.Helper()
	var missing []int
	for i := range n {
		if v, _, _ := m.kv.get(fmt.Sprintf("key%d", i)); v != "v" {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the store lacks keys %v of key0..key%d", missing, n-1)
	}
}

func (m *member) raftDir() string { return filepath.Join(m.dir, "raft") }
func (m *member) logPath() string { return filepath.Join(m.dir, "raft", logFile) }

// newestSnapshot is the state file of m's newest snapshot.
func (m *member) newestSnapshot(t *testing.T) string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(m.raftDir(), snapshotDir, snapshotDir, "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no snapshot in %s (%v)", m.raftDir(), err)
	}
	return filepath.Join(dirs[len(dirs)-1], "state.bin")
}

// copyDir copies the directory src to dst, which must not exist.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
}

func kvApplied(path string) (uint64, error) { return boltfile.ReadUint64(path, bucketKV, keyApplied) }

// TestOpenRefusesDataDir damages a stopped node's Raft directory in each
// way a node must not start from: Open refuses with an error matching
// ErrNotWhole that names the file and says what was found, and changes
// nothing in the directory. Before, a missing or emptied raft.db
// bootstrapped a new cluster under a store that had applied the old one
// (its writes then changed nothing), a truncated one crashed, and a store
// past its log started.
func TestOpenRefusesDataDir(t *testing.T) {
	tests := map[string]struct {
		snapshot bool // take one before the node stops
		damage   func(t *testing.T, m *member)
		say      []string // in the error, besides ErrNotWhole's
	}{
		"raft.db removed": {
			damage: func(t *testing.T, m *member) { os.Remove(m.logPath()) },
			say:    []string{"is missing", "has applied entries up to"},
		},
		"raft.db emptied": {
			damage: func(t *testing.T, m *member) { os.Truncate(m.logPath(), 0) },
			say:    []string{"empty"},
		},
		"raft.db truncated": {
			damage: func(t *testing.T, m *member) { os.Truncate(m.logPath(), int64(testdir.PagesEnd(t, m.logPath())/2)) },
			say:    []string{"truncated"},
		},
		"store past the log": {
			// The Raft directory of an earlier moment, under a store
			// that applied more since.
			damage: func(t *testing.T, m *member) {
				os.RemoveAll(m.raftDir())
				copyDir(t, filepath.Join(m.dir, "raft-earlier"), m.raftDir())
			},
			say: []string{"past what the Raft log and snapshots hold"},
		},
		"log lost its first entries": {
			damage: func(t *testing.T, m *member) {
				logs, err := raftboltdb.NewBoltStore(m.logPath())
				if err != nil {
					t.Fatal(err)
				}
				defer logs.Close()
				if err := logs.DeleteRange(1, 3); err != nil {
					t.Fatal(err)
				}
			},
			say: []string{"entries 1-3 are in neither the Raft log nor a snapshot"},
		},
		"newest snapshot truncated": {
			snapshot: true,
			damage:   func(t *testing.T, m *member) { os.Truncate(m.newestSnapshot(t), 4096) },
			say:      []string{"newest snapshot", "state.bin"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ms := cluster(t, 1)
			m := ms[0]
			setKeys(t, m, 0, 3)
			m.stop()
			copyDir(t, m.raftDir(), filepath.Join(m.dir, "raft-earlier"))
			m.start(t, true)
			waitReady(t, ms)
			setKeys(t, m, 3, 6)
			if tc.snapshot {
				if err := m.node.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			m.stop()
			tc.damage(t, m)
			before := testdir.Files(t, m.raftDir())

			err := m.open(t, true)
			if err == nil {
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
			if !errors.Is(err, ErrNotWhole) {
				t.Errorf("Open = %v, want ErrNotWhole", err)
			}
			for _, s := range tc.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("the error does not say %q", s)
				}
			}
			if !strings.Contains(err.Error(), m.raftDir()) {
				t.Errorf("the error does not name a file in %s", m.raftDir())
			}
			if diff := cmp.Diff(before, testdir.Files(t, m.raftDir())); diff != "" {
				t.Errorf("a refused Open changed the Raft directory (-before +after):\n%s", diff)
			}
		})
	}
}

// TestCheckDataDir checks a data directory before its store is opened:
// a store missing beside a log that holds entries is refused, a fresh
// directory and a whole one are not.
func TestCheckDataDir(t *testing.T) {
	m := cluster(t, 1)[0]
	setKeys(t, m, 0, 3)
	m.stop()
	store := filepath.Join(m.dir, "kv.db")
	if err := CheckDataDir(m.raftDir(), store, kvApplied, "recover so"); err != nil {
		t.Errorf("a whole directory: %v", err)
	}
	fresh := t.TempDir()
	if err := CheckDataDir(filepath.Join(fresh, "raft"), filepath.Join(fresh, "kv.db"), kvApplied, "recover so"); err != nil {
		t.Errorf("a fresh directory: %v", err)
	}
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	before := testdir.Files(t, m.dir)
	err := CheckDataDir(m.raftDir(), store, kvApplied, "recover so")
	if !errors.Is(err, ErrNotWhole) || !strings.Contains(err.Error(), store+" is missing, but the Raft log") ||
		!strings.HasSuffix(err.Error(), "\nrecover so") {
		t.Errorf("a missing store: %v, want ErrNotWhole saying %s is missing, then how to recover", err, store)
	}
	if diff := cmp.Diff(before, testdir.Files(t, m.dir)); diff != "" {
		t.Errorf("CheckDataDir changed the directory (-before +after):\n%s", diff)
	}
	// A store another process holds is no refusal of the directory, and
	// the recovery would be wrong: stop that process.
	m.kv = openKV(t, filepath.Join(m.dir, "kv.db"))
	err = CheckDataDir(m.raftDir(), filepath.Join(m.dir, "kv.db"), kvApplied, "recover so")
	m.kv.db.Close()
	if !errors.Is(err, boltfile.ErrLocked) || errors.Is(err, ErrNotWhole) || strings.Contains(err.Error(), "recover so") {
		t.Errorf("a store held by another: %v, want boltfile.ErrLocked without ErrNotWhole or the recovery", err)
	}
	os.WriteFile(store, nil, 0o600)
	if err := CheckDataDir(m.raftDir(), store, kvApplied, "recover so"); !errors.Is(err, boltfile.ErrEmpty) || !errors.Is(err, ErrNotWhole) {
		t.Errorf("an empty store: %v, want ErrNotWhole and boltfile.ErrEmpty", err)
	}
}

// TestCatchUpToSnapshot starts a node whose store is an older copy, from
// before its newest snapshot: Raft replays only the entries after the
// snapshot, so the node first brings the store up to the snapshot, from
// the log while it holds the entries between, else from the snapshot.
// Before, the entries between were missing from the store.
func TestCatchUpToSnapshot(t *testing.T) {
	for name, trailing := range map[string]uint64{"from the log": 1000, "from the snapshot": 2} {
		t.Run(name, func(t *testing.T) {
			ms := cluster(t, 1)
			m := ms[0]
			m.tune = func(c *raft.Config) { c.TrailingLogs = trailing }
			m.stop()
			m.start(t, true)
			waitReady(t, ms)
			setKeys(t, m, 0, 5)
			older, err := os.ReadFile(filepath.Join(m.dir, "kv.db"))
			if err != nil {
				t.Fatal(err)
			}
			setKeys(t, m, 5, 20)
			if err := m.node.Snapshot(); err != nil {
				t.Fatal(err)
			}
			snapIndex := m.node.AppliedIndex()
			m.stop()
			if err := os.WriteFile(filepath.Join(m.dir, "kv.db"), older, 0o600); err != nil {
				t.Fatal(err)
			}
			m.start(t, true)
			if got := m.kv.AppliedIndex(); got < snapIndex {
				t.Errorf("applied index %d after Open, want at least the snapshot's %d", got, snapIndex)
			}
			waitReady(t, ms)
			setKeys(t, m, 20, 21)
			checkKeys(t, m, 21)
		})
	}
}

// TestSnapshotFilesPrivate: snapshot files are 0600 in 0700 directories
// (raft makes them 0644 and 0755), those a node writes and those an
// earlier release left.
func TestSnapshotFilesPrivate(t *testing.T) {
	ms := cluster(t, 1)
	m := ms[0]
	setKeys(t, m, 0, 3)
	if err := m.node.Snapshot(); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, filepath.Join(m.raftDir(), snapshotDir))

	m.stop()
	err := filepath.WalkDir(filepath.Join(m.raftDir(), snapshotDir), func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	m.start(t, true)
	checkPrivate(t, filepath.Join(m.raftDir(), snapshotDir))
}

// checkPrivate fails the test unless every directory under dir is 0700
// and every file 0600, and there is a state file.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	states := 0
	for path, desc := range testdir.Files(t, dir) {
		want := "-rw-------"
		if strings.HasPrefix(desc, "d") {
			want = "drwx------"
		}
		if !strings.HasPrefix(desc, want+" ") && desc != want {
			t.Errorf("%s: %s, want %s", path, desc, want)
		}
		if filepath.Base(path) == "state.bin" {
			states++
		}
	}
	if states == 0 {
		t.Errorf("no snapshot under %s", dir)
	}
}
