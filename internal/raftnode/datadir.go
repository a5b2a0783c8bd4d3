package raftnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/boltfile"
)

// ErrNotWhole marks a data directory a node must not start on: its store,
// Raft log and snapshots do not agree, or one of them is missing, empty or
// damaged. Starting would be a fresh start beside data that exists (a new
// cluster, writes that change nothing) or would serve a store with a gap.
// The error says which file and what was found; the daemon adds how to
// recover.
var ErrNotWhole = errors.New("raftnode: the data directory is not whole")

// The files of a node under Config.Dir.
const (
	logFile     = "raft.db"   // the Raft log and Raft's stable store (raft-boltdb)
	snapshotDir = "snapshots" // raft's FileSnapshotStore
	// retainSnapshots is how many snapshots the node keeps.
	retainSnapshots = 2
)

// disk is what a node's Raft directory holds, read without changing it.
type disk struct {
	logPath     string
	hasLog      bool   // raft.db exists (and is a whole bbolt file)
	first, last uint64 // the log's entries; 0 and 0 if none
	snapIndex   uint64 // the newest snapshot's last index; 0 if none
	snapID      string
	snapPath    string // its state file
}

// storeFile is what the caller knows of its state machine's store.
type storeFile struct {
	path    string // "" where the caller does not know it (Open)
	exists  bool
	applied uint64
}

// CheckDataDir reports whether a node may start on the Raft directory dir
// (Config.Dir) and the store file at storePath, without changing
// anything in either: readApplied reads the store's applied index without
// writing (a missing store is an error matching fs.ErrNotExist). A
// refusal matches ErrNotWhole, names the file, and ends with recovery,
// the daemon's word on how to recover. Open checks the same against its
// Applier; a daemon calls this first, before its store opens the file for
// writing, so that a refused start leaves the directory as it was. The
// rules are in the package doc.
func CheckDataDir(dir, storePath string, readApplied func(path string) (uint64, error), recovery string) error {
	err := checkDataDir(dir, storePath, readApplied)
	if errors.Is(err, ErrNotWhole) {
		return fmt.Errorf("%w\n%s", err, recovery)
	}
	return err
}

func checkDataDir(dir, storePath string, readApplied func(path string) (uint64, error)) error {
	st := storeFile{path: storePath}
	applied, err := readApplied(storePath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return refuseFile("the store", err)
	default:
		st.exists, st.applied = true, applied
	}
	d, err := readDisk(dir)
	if err != nil {
		return err
	}
	return d.agree(st)
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotWhole}, args...)...)
}

// refuseFile refuses a file boltfile found missing, empty or damaged; a
// file another process holds is no refusal of the directory.
func refuseFile(what string, err error) error {
	if errors.Is(err, boltfile.ErrLocked) {
		return fmt.Errorf("raftnode: %s: %w", what, err)
	}
	return refuse("%s: %w", what, err)
}

// readDisk reads the Raft directory dir without changing it: the log's
// file is checked page by page (boltfile) and its first and last index
// read, and the newest snapshot's state file is read through to check
// its checksum.
func readDisk(dir string) (disk, error) {
	d := disk{logPath: filepath.Join(dir, logFile)}
	switch err := boltfile.Check(d.logPath); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return d, refuseFile("the Raft log", err)
	default:
		d.hasLog = true
		if err := d.readLog(); err != nil {
			return d, refuse("the Raft log %s: %w", d.logPath, err)
		}
	}
	return d, d.readSnapshot(filepath.Join(dir, snapshotDir))
}

// readLog reads the first and last index of the log read-only.
func (d *disk) readLog() (err error) {
	logs, err := raftboltdb.New(raftboltdb.Options{Path: d.logPath,
		BoltOptions: &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return err
	}
	defer logs.Close()
	defer func() {
		// raft-boltdb panics on a bbolt file that has no log bucket.
		if r := recover(); r != nil {
			err = fmt.Errorf("not a Raft log: %v", r)
		}
	}()
	if d.first, err = logs.FirstIndex(); err != nil {
		return err
	}
	d.last, err = logs.LastIndex()
	return err
}

// readSnapshot finds the newest snapshot under base and checks its state
// file against the checksum its metadata records.
func (d *disk) readSnapshot(base string) error {
	if _, err := os.Stat(base); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(base, retainSnapshots, hclog.NewNullLogger())
	if err != nil {
		return refuse("the snapshots in %s: %w", base, err)
	}
	list, err := snaps.List()
	if err != nil {
		return refuse("the snapshots in %s: %w", base, err)
	}
	if len(list) == 0 {
		return nil
	}
	newest := list[0]
	d.snapIndex, d.snapID = newest.Index, newest.ID
	d.snapPath = filepath.Join(base, snapshotDir, newest.ID, "state.bin")
	_, rc, err := snaps.Open(newest.ID)
	if err != nil {
		return refuse("the newest snapshot %s (up to entry %d) does not read whole: %w", d.snapPath, newest.Index, err)
	}
	return rc.Close()
}

// agree checks that the store can be explained by the log and the
// snapshots: Raft replays the entries after the newest snapshot, and the
// store skips those it has applied.
func (d disk) agree(st storeFile) error {
	switch {
	case !st.exists && (d.last > 0 || d.snapIndex > 0):
		return refuse("%s is missing, but %s", st.name(), d.holds())
	case !d.hasLog && (st.applied > 0 || d.snapIndex > 0):
		return refuse("%s is missing, but %s has applied entries up to %d%s", d.logPath, st.name(), st.applied, d.snapshotNote())
	case st.applied > max(d.last, d.snapIndex):
		return refuse("%s has applied entries up to %d, past what the Raft log and snapshots hold: %s", st.name(), st.applied, d.holds())
	case d.last > d.snapIndex && d.first > d.snapIndex+1:
		return refuse("entries %d-%d are in neither the Raft log nor a snapshot: %s", d.snapIndex+1, d.first-1, d.holds())
	}
	return nil
}

func (st storeFile) name() string {
	if st.path == "" {
		return "the store"
	}
	return "the store " + st.path
}

// holds says what the log and the snapshots hold.
func (d disk) holds() string {
	s := "the Raft log " + d.logPath
	switch {
	case !d.hasLog:
		s += " is missing"
	case d.last == 0:
		s += " holds no entries"
	default:
		s += fmt.Sprintf(" holds entries %d-%d", d.first, d.last)
	}
	return s + d.snapshotNote()
}

func (d disk) snapshotNote() string {
	if d.snapIndex == 0 {
		return ", and there is no snapshot"
	}
	return fmt.Sprintf(", and the newest snapshot (%s) ends at entry %d", d.snapPath, d.snapIndex)
}

// catchUp brings a store that is behind the newest snapshot up to it
// before Raft starts. Raft takes the newest snapshot as applied and
// replays only the entries after it (the store file is the state, so it
// is not told to restore the snapshot: package doc); a store behind it (a
// file restored from an older copy) would keep a gap. The entries come
// from the log if it still holds them all, else from the snapshot, after
// which the store records the snapshot's index: the entries between the
// store's last command and that index are Raft's own (no-ops, barriers),
// which the state machine never sees.
func (n *Node) catchUp(d disk, logs raft.LogStore, snaps raft.SnapshotStore, f *fsm) error {
	applied := n.a.AppliedIndex()
	if applied >= d.snapIndex {
		return nil
	}
	if d.first > 0 && d.first <= applied+1 && d.last >= d.snapIndex {
		n.log.Warn("the store is behind the newest snapshot: applying the entries between from the log",
			"applied_index", applied, "snapshot_index", d.snapIndex)
		return replay(logs, f, applied+1, d.snapIndex)
	}
	n.log.Warn("the store is behind the newest snapshot and the log no longer holds the entries between: restoring the snapshot",
		"applied_index", applied, "snapshot_index", d.snapIndex, "snapshot", d.snapPath)
	_, rc, err := snaps.Open(d.snapID)
	if err != nil {
		return refuse("the newest snapshot %s: %w", d.snapPath, err)
	}
	if err := f.Restore(rc); err != nil {
		return refuse("restore the store from the newest snapshot %s: %w", d.snapPath, err)
	}
	if _, err := n.a.Apply([]Entry{{Index: d.snapIndex}}); err != nil {
		return fmt.Errorf("raftnode: record the snapshot's index %d in the store: %w", d.snapIndex, err)
	}
	return nil
}

// replay applies the log's entries from, to through f, in groups as Raft
// would.
func replay(logs raft.LogStore, f *fsm, from, to uint64) error {
	const group = 512
	for from <= to {
		var batch []*raft.Log
		for ; from <= to && len(batch) < group; from++ {
			l := new(raft.Log)
			if err := logs.GetLog(from, l); err != nil {
				return fmt.Errorf("raftnode: read log entry %d: %w", from, err)
			}
			batch = append(batch, l)
		}
		if _, err := f.apply(batch); err != nil {
			return fmt.Errorf("raftnode: %w", err)
		}
	}
	return nil
}
