package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/outposthq/outpost/internal/command"
	"github.com/outposthq/outpost/internal/errs"
	"github.com/outposthq/outpost/internal/raftnode"
	"github.com/outposthq/outpost/syncproto"
)

// Proposer commits commands to a replicated log and returns each one's
// result once it is applied here (*raftnode.Node).
type Proposer interface {
	Propose(ctx context.Context, cmd []byte) (index uint64, result any, err error)
}

// ErrNotApplied wraps an error from a Proposer: the change may or may not
// be committed (the leader was lost in the middle), or was not (this node
// does not lead).
var ErrNotApplied = errors.New("store: the change was not confirmed")

// proposeTimeout bounds how long a change waits to commit.
const proposeTimeout = 10 * time.Second

// SetProposer makes every change from now on go through p; a store
// without one applies its changes at once (a single central).
func (d *DB) SetProposer(p Proposer) { d.proposer.Store(&p) }

// exec applies a command, through the proposer if there is one, and
// returns its result (a number, or 0); a refusal is returned as the
// error.
func (d *DB) exec(t command.Type, payload any) (uint64, error) {
	r, err := d.execResult(t, payload)
	n, _ := r.(uint64)
	return n, err
}

// execResult is exec for a command whose result is not a number. A
// replicated store proposes a type above LastUnreported only once the
// command check passes (SetCommandCheck); its refusal is returned as is.
func (d *DB) execResult(t command.Type, payload any) (any, error) {
	cmd, err := command.Encode(t, payload)
	if err != nil {
		return nil, err
	}
	var r any
	if p := d.proposer.Load(); p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), proposeTimeout)
		defer cancel()
		// A type an older member would not apply is not proposed
		// (skew.go): nothing is committed.
		if err := d.checkKnown(ctx, t); err != nil {
			return nil, err
		}
		if _, r, err = (*p).Propose(ctx, cmd); err != nil {
			return nil, fmt.Errorf("%w: command %d: %w", ErrNotApplied, t, err)
		}
	} else if r, err = d.applyLocal(cmd); err != nil {
		return nil, err
	}
	if e, ok := r.(error); ok {
		return nil, e
	}
	return r, nil
}

// applyLocal applies cmd outside any log: the applied index does not
// move, so the same file can later bootstrap a Raft cluster whose log
// starts at 1. Commands that arrive while a transaction commits wait,
// and the next transaction applies them all (group commit: one fsync for
// many writers, as Apply does for a batch of log entries); the first of
// them commits it. A lone command commits at once, waiting for nothing.
func (d *DB) applyLocal(cmd []byte) (any, error) {
	c := &localCmd{cmd: cmd, lead: make(chan bool, 1)}
	d.gmu.Lock()
	d.queue = append(d.queue, c)
	lead := !d.committing
	d.committing = true
	d.gmu.Unlock()
	if lead || <-c.lead {
		d.commitQueued()
	}
	return c.r, c.err
}

// localCmd is a command waiting in applyLocal's queue. lead receives
// true when its caller is to commit the next group, and is closed once
// r and err are its outcome.
type localCmd struct {
	cmd  []byte
	r    any
	err  error
	lead chan bool
}

// commitQueued applies the queued commands in one transaction, then
// hands the commit of those queued meanwhile to the first of them.
func (d *DB) commitQueued() {
	d.gmu.Lock()
	group := d.queue
	d.queue = nil
	d.gmu.Unlock()
	if err := d.applyGroup(group); err != nil && len(group) > 1 {
		// The store failed (not a refusal): each alone, so that one
		// command's failure is not the others'.
		for _, c := range group {
			_ = d.applyGroup([]*localCmd{c})
		}
	}
	d.gmu.Lock()
	if len(d.queue) > 0 {
		d.queue[0].lead <- true
	} else {
		d.committing = false
	}
	d.gmu.Unlock()
	for _, c := range group {
		close(c.lead)
	}
}

// applyGroup applies group's commands in order in one transaction,
// setting each one's outcome; on an error nothing of them is applied, and
// each has the error.
func (d *DB) applyGroup(group []*localCmd) error {
	tx := &txn{}
	var x *fleetIndex
	err := d.update(func(btx *bolt.Tx) error {
		tx.Tx, tx.notify, tx.fleet, x = btx, nil, nil, d.index.Load()
		for _, c := range group {
			r, err := applyOne(tx, c.cmd, 0)
			if err != nil {
				return err
			}
			c.r, c.err = r, nil
		}
		return nil
	})
	if err != nil {
		for _, c := range group {
			c.r, c.err = nil, err
		}
		return err
	}
	x.update(tx.fleet)
	d.notifyAll(tx.notify)
	return nil
}

// Apply applies committed log entries in order, in one transaction that
// also records the highest index applied, and returns one result per
// entry (raftnode.Applier): a command's number, or the refusal that
// changed nothing. An entry at or below the index applied before is
// skipped (a replay after a restart); an entry without data only moves
// the index. An error means the store could not be written: nothing of
// the entries is applied, and the node stops. A command of an unknown
// type panics (command.Table).
func (d *DB) Apply(entries []raftnode.Entry) ([]any, error) {
	out := make([]any, len(entries))
	tx := &txn{}
	var x *fleetIndex
	err := d.update(func(btx *bolt.Tx) error {
		tx.Tx, tx.notify, tx.fleet, x = btx, nil, nil, d.index.Load()
		meta := btx.Bucket(bucketMeta)
		applied := readU64(meta.Get(keyAppliedIndex))
		last := applied
		for i, e := range entries {
			if e.Index <= applied {
				continue
			}
			last = max(last, e.Index)
			if e.Data == nil {
				continue
			}
			r, err := applyOne(tx, e.Data, e.Index)
			if err != nil {
				return fmt.Errorf("log entry %d: %w", e.Index, err)
			}
			out[i] = r
		}
		if last == applied {
			return nil
		}
		return meta.Put(keyAppliedIndex, u64(last))
	})
	if err != nil {
		return nil, err
	}
	x.update(tx.fleet)
	d.notifyAll(tx.notify)
	return out, nil
}

// applyOne applies one command through the table. A refusal is its
// result; an error is a failure of the store.
func applyOne(tx *txn, cmd []byte, index uint64) (any, error) {
	watchers, changes := len(tx.notify), len(tx.fleet)
	r, _, err := table.Apply(tx, cmd, index)
	if refusal(err) {
		tx.notify, tx.fleet = tx.notify[:watchers], tx.fleet[:changes]
		return err, nil
	}
	return r, err
}

// refusal reports whether err refuses a command: a domain error, or the
// protocol error a site's batch earned (both change nothing).
func refusal(err error) bool {
	var pe *syncproto.Error
	_, ok := errs.AsError(err)
	return ok || errors.As(err, &pe)
}

// AppliedIndex is the index of the last log entry applied (0 for a store
// that is not replicated).
func (d *DB) AppliedIndex() uint64 {
	var idx uint64
	_ = d.view(func(tx *bolt.Tx) error {
		idx = readU64(tx.Bucket(bucketMeta).Get(keyAppliedIndex))
		return nil
	})
	return idx
}
