package store

import (
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/raftnode"
)

// fileSnapshot is the whole store as of one moment, pinned by a read
// transaction until Release.
type fileSnapshot struct {
	tx *bolt.Tx
	d  *DB
}

// Snapshot pins the store's current state (a replicated central's Raft
// snapshot; raftnode.Applier). Release it when done: it holds the
// store's shared lock.
func (d *DB) Snapshot() (raftnode.Snapshot, error) {
	d.mu.RLock()
	tx, err := d.db.Begin(false)
	if err != nil {
		d.mu.RUnlock()
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	return &fileSnapshot{tx: tx, d: d}, nil
}

// WriteTo writes the pinned state as a bbolt file.
func (s *fileSnapshot) WriteTo(w io.Writer) (int64, error) { return s.tx.WriteTo(w) }

// Release ends the snapshot.
func (s *fileSnapshot) Release() {
	if s.tx == nil {
		return
	}
	s.tx.Rollback()
	s.tx = nil
	s.d.mu.RUnlock()
}

// Restore replaces the whole store with a file written by
// Snapshot.WriteTo: it is written beside the store, checked, and swapped
// in under the exclusive lock. Every watcher is woken, since anything may
// have changed.
func (d *DB) Restore(r io.Reader) error {
	tmp := d.path + ".restore"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("store: restore: read snapshot: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("store: restore: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: restore: %w", err)
	}
	// Check the file opens and has a schema this code reads before the
	// store is given up for it.
	check, err := openBolt(tmp)
	if err != nil {
		return fmt.Errorf("store: restore: the snapshot is not a store: %w", err)
	}
	check.Close()

	d.mu.Lock()
	defer d.notifyEveryone()
	defer d.mu.Unlock()
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("store: restore: close: %w", err)
	}
	if err := os.Rename(tmp, d.path); err != nil {
		// Reopen the old file: the store stays as it was.
		if db, oerr := openBolt(d.path); oerr == nil {
			d.db = db
		}
		return fmt.Errorf("store: restore: %w", err)
	}
	db, err := openBolt(d.path)
	if err != nil {
		return fmt.Errorf("store: restore: reopen: %w", err)
	}
	d.db = db
	var version uint64
	if x := d.index.Load(); x != nil {
		version = x.Version()
	}
	return d.loadIndex(version)
}
