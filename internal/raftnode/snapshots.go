package raftnode

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// privateSnapshots is raft's FileSnapshotStore with files only this user
// reads and writes: raft makes them 0644 in 0755 directories, and a
// snapshot is the whole store (sealed secrets, token hashes, machines'
// user data).
type privateSnapshots struct {
	*raft.FileSnapshotStore
	dir string
}

// openSnapshots opens the snapshot store under base, and first makes the
// snapshots already there (written by an earlier release) private.
func openSnapshots(base string, log hclog.Logger) (*privateSnapshots, error) {
	snaps, err := raft.NewFileSnapshotStoreWithLogger(base, retainSnapshots, log)
	if err != nil {
		return nil, fmt.Errorf("raftnode: open the snapshot store: %w", err)
	}
	if err := private(base); err != nil {
		return nil, fmt.Errorf("raftnode: snapshot store: %w", err)
	}
	return &privateSnapshots{FileSnapshotStore: snaps, dir: base}, nil
}

// Create starts a snapshot as raft does, then makes its files private
// before anything is written to its state file.
func (s *privateSnapshots) Create(version raft.SnapshotVersion, index, term uint64,
	configuration raft.Configuration, configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	if err := private(s.dir); err != nil {
		sink.Cancel()
		return nil, fmt.Errorf("raftnode: snapshot %s: %w", sink.ID(), err)
	}
	return sink, nil
}

// private makes the directories under dir 0700 and the files 0600.
// Raft rewrites a snapshot's files in place, which keeps their mode.
func private(dir string) error {
	return filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // an old snapshot reaped meanwhile
		}
		if err != nil {
			return err
		}
		mode := fs.FileMode(0o600)
		if e.IsDir() {
			mode = 0o700
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil || info.Mode().Perm() == mode {
			return err
		}
		if err := os.Chmod(path, mode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}
