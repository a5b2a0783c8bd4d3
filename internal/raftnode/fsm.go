package raftnode

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/command"
)

// Entry is one command of a committed log entry, as an Applier gets it
// (command.Entry: a state machine implements Applier without importing
// this package).
type Entry = command.Entry

// Applier is the state machine a Node replicates. Raft calls it from one
// goroutine; AppliedIndex and Snapshot may be called from others.
type Applier interface {
	// Apply applies entries in order in one transaction that records
	// the highest index applied, skipping those at or below the index
	// applied before, and returns one result per entry (nil for a
	// skipped one). An error means the store could not be written or an
	// entry could not be decoded: the node stops.
	Apply(entries []Entry) ([]any, error)
	// AppliedIndex is the index of the last entry applied.
	AppliedIndex() uint64
	// Snapshot pins the current state for Raft to persist.
	Snapshot() (Snapshot, error)
	// Restore replaces the whole state with a snapshot's.
	Restore(r io.Reader) error
}

// Snapshot is a pinned state of an Applier. It is an alias of an
// interface literal, so that a state machine implements Applier without
// importing this package.
type Snapshot = interface {
	WriteTo(w io.Writer) (int64, error)
	Release()
}

// batchResult is the response to a Batch log entry: its commands'
// results, in order.
type batchResult []any

// fsm adapts an Applier to raft.BatchingFSM: it unpacks Batch entries
// and tells the node when the applied index moves.
type fsm struct {
	a       Applier
	log     *slog.Logger
	applied func() // called after each apply and restore
	// stalled is told each failed write of a full disk (nil: such a
	// failure panics as any other); stop ends the wait for space.
	stalled func(error)
	stop    <-chan struct{}
}

var _ raft.BatchingFSM = (*fsm)(nil)

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies a group of committed logs through the Applier in one
// call. A store that the disk being full keeps from being written is
// tried again until it can be (writes.go), or until the node closes; any
// other failure panics (see the package doc).
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	for {
		out, err := f.apply(logs)
		if err == nil {
			if f.stalled != nil {
				f.stalled(nil)
			}
			return out
		}
		if f.stalled == nil || !spaceMayReturn(err) {
			panic("raftnode: " + err.Error())
		}
		f.stalled(err)
		select {
		case <-f.stop:
			// Closing: the store never took these entries, and a
			// restart applies them from the log.
			return closedResults(len(logs))
		case <-time.After(applyRetry):
		}
	}
}

// closedResults answers n logs that were not applied because the node
// closed.
func closedResults(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = ErrUnknownOutcome
	}
	return out
}

// apply applies logs through the Applier in one call and returns one
// result per log.
func (f *fsm) apply(logs []*raft.Log) ([]any, error) {
	var entries []Entry
	sizes := make([]int, len(logs)) // commands per log; -1: not a batch
	for i, l := range logs {
		sizes[i] = -1
		if l.Type != raft.LogCommand {
			entries = append(entries, Entry{Index: l.Index})
			continue
		}
		t, payload := command.Split(l.Data)
		if t != command.Batch {
			entries = append(entries, Entry{Index: l.Index, Data: l.Data})
			continue
		}
		cmds, err := command.SplitBatch(payload)
		if err != nil {
			return nil, fmt.Errorf("log %d: %w", l.Index, err)
		}
		sizes[i] = len(cmds)
		for _, c := range cmds {
			entries = append(entries, Entry{Index: l.Index, Data: c})
		}
	}
	results, err := f.a.Apply(entries)
	if err != nil {
		return nil, fmt.Errorf("apply logs %d-%d: %w", logs[0].Index, logs[len(logs)-1].Index, err)
	}
	if len(results) != len(entries) {
		return nil, fmt.Errorf("the state machine answered %d of %d entries", len(results), len(entries))
	}
	f.applied()
	out := make([]any, len(logs))
	k := 0
	for i, n := range sizes {
		if n < 0 {
			out[i] = results[k]
			k++
			continue
		}
		out[i] = batchResult(results[k : k+n])
		k += n
	}
	return out, nil
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.a.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.a.Restore(rc); err != nil {
		return err
	}
	f.log.Info("restored the store from a snapshot", "applied_index", f.a.AppliedIndex())
	f.applied()
	return nil
}

type fsmSnapshot struct{ s Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("raftnode: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.s.Release() }
