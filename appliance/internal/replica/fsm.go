package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// FSM applies committed commands to the store. It implements
// raft.BatchingFSM so that a batch of logs costs one bbolt commit.
type FSM struct {
	db  *store.DB
	log *slog.Logger
}

// NewFSM returns the state machine over db.
func NewFSM(db *store.DB, log *slog.Logger) *FSM {
	return &FSM{db: db, log: log}
}

var _ raft.BatchingFSM = (*FSM)(nil)

// Apply applies one log.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies logs in order in one transaction. Each response is a
// Result. A storage failure panics: the node cannot go on without its
// state, and Raft will replay the batch after a restart.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	err := f.db.Update(func(tx *store.Tx) error {
		applied := tx.AppliedIndex()
		last := applied
		for i, l := range logs {
			if l.Index <= applied {
				results[i] = Result{Index: l.Index} // replay: already in the store
				continue
			}
			last = l.Index
			if l.Type != raft.LogCommand {
				results[i] = Result{Index: l.Index}
				continue
			}
			r, err := f.applyCommand(tx, l.Data, l.Index)
			if err != nil {
				return err
			}
			results[i] = r
		}
		if last == applied {
			return nil
		}
		return tx.UnsafeSetAppliedIndex(last)
	})
	if err != nil {
		panic(fmt.Sprintf("replica: apply logs %d-%d: %v", logs[0].Index, logs[len(logs)-1].Index, err))
	}
	return results
}

// applyCommand applies one command. Domain errors become the Result's Err;
// only storage failures are returned.
func (f *FSM) applyCommand(tx *store.Tx, data []byte, index uint64) (Result, error) {
	t, payload := commandTypeOf(data)
	if t == Batch {
		return f.applyBatchCommand(tx, payload, index)
	}
	fn, ok := applyTable[t]
	if !ok {
		if t&IgnoreUnknown != 0 {
			f.log.Warn("skipping unknown ignorable command", "type", uint8(t), "index", index)
			return Result{Index: index}, nil
		}
		panic(fmt.Errorf("%w %d at index %d: the log was written by a newer appliance; upgrade this node", errUnknownCommand, uint8(t), index))
	}
	obj, err := fn(tx, payload, index)
	if err != nil {
		if e, ok := errs.AsError(err); ok && !errors.Is(err, store.ErrCorrupt) {
			return Result{Index: index, Err: e}, nil
		}
		return Result{}, err
	}
	return Result{Index: index, Object: obj}, nil
}

// applyBatchCommand applies a Batch entry's commands in order, each with
// its own result; a refused command does not stop the others.
func (f *FSM) applyBatchCommand(tx *store.Tx, payload []byte, index uint64) (Result, error) {
	cmds := splitBatch(payload, index)
	out := Result{Index: index, Batch: make([]Result, len(cmds))}
	for i, c := range cmds {
		if t, _ := commandTypeOf(c); t == Batch {
			panic(fmt.Sprintf("replica: nested batch at index %d", index))
		}
		r, err := f.applyCommand(tx, c, index)
		if err != nil {
			return Result{}, err
		}
		out.Batch[i] = r
	}
	return out, nil
}

// Snapshot pins the store's current state. Persist streams it; Release
// ends the read transaction.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.db.Snapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s}, nil
}

// Restore replaces the store with a snapshot taken by Snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.Restore(rc); err != nil {
		return err
	}
	f.log.Info("restored store from snapshot", "applied_index", f.db.AppliedIndex())
	return nil
}

type fsmSnapshot struct{ s *store.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("replica: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.s.Release() }

// decodeResult turns an apply response into a Result and an error.
func decodeResult(resp any) (Result, error) {
	r, ok := resp.(Result)
	if !ok {
		return Result{}, fmt.Errorf("replica: unexpected apply response %T", resp)
	}
	if r.Err != nil {
		return r, r.Err
	}
	return r, nil
}

// DecodeValue returns a put's stored object from its Result.
func DecodeValue[T any](r Result) (*T, error) {
	if o, ok := r.Object.(*T); ok {
		return o, nil
	}
	v := new(T)
	if err := json.Unmarshal(r.Value, v); err != nil {
		return nil, fmt.Errorf("replica: decode result: %w", err)
	}
	return v, nil
}
