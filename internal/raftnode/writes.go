package raftnode

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// A node whose disk is full cannot append to its Raft log, record its
// term and vote, or apply committed entries to its store. Raft copes with
// the first two: a leader that cannot append steps down and a follower
// that cannot append refuses the entries, so nothing is acknowledged that
// is not durable on a quorum, and the node catches up once it can write
// again. The third is the FSM's: it must not skip an entry, so it waits,
// trying again, until the store can be written (fsm.ApplyBatch), and
// meanwhile hands leadership to another voter. Raft says none of this:
// watchedLogs and the FSM count every failed write and keep the node's
// write problem (Node.WriteProblem) from the first failure until the next
// write of the same file that succeeds, logging each change once.

// The files a node writes, as writeHealth names them.
const (
	fileLog   = "raft log"
	fileStore = "store"
)

// writeHealth is a node's record of its failed writes.
type writeHealth struct {
	log    *slog.Logger
	errors atomic.Uint64
	mu     sync.Mutex
	// problems holds, by file, the last failed write's error until a
	// write of that file succeeds.
	problems map[string]string
}

// note records the outcome of one write of file and returns err.
func (w *writeHealth) note(file string, err error) error {
	if err != nil {
		w.errors.Add(1)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, had := w.problems[file]
	switch {
	case err != nil && !had:
		w.problems[file] = err.Error()
		w.log.Error("the "+file+" cannot be written: this node can neither commit nor lead until it can", "err", err)
	case err != nil:
		w.problems[file] = err.Error()
	case had:
		delete(w.problems, file)
		w.log.Info("the "+file+" can be written again", "failed_writes", w.errors.Load())
	}
	return err
}

// current is the node's write problems, "" if none.
func (w *writeHealth) current() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, f := range []string{fileLog, fileStore} {
		if p, ok := w.problems[f]; ok {
			out = append(out, f+": "+p)
		}
	}
	return strings.Join(out, "; ")
}

// spaceMayReturn says whether err is a write that may succeed later
// without anything but space being freed: the disk or a quota is full.
func spaceMayReturn(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// applyRetry is how long the FSM waits between tries of a store write
// that found the disk full.
const applyRetry = 250 * time.Millisecond

// watchedLogs is raft-boltdb's log and stable store, each write noted
// in a writeHealth.
type watchedLogs struct {
	*raftboltdb.BoltStore
	w *writeHealth
}

func (s watchedLogs) StoreLog(l *raft.Log) error { return s.w.note(fileLog, s.BoltStore.StoreLog(l)) }

func (s watchedLogs) StoreLogs(ls []*raft.Log) error {
	return s.w.note(fileLog, s.BoltStore.StoreLogs(ls))
}

func (s watchedLogs) DeleteRange(min, max uint64) error {
	return s.w.note(fileLog, s.BoltStore.DeleteRange(min, max))
}

func (s watchedLogs) Set(k, v []byte) error { return s.w.note(fileLog, s.BoltStore.Set(k, v)) }

func (s watchedLogs) SetUint64(k []byte, v uint64) error {
	return s.w.note(fileLog, s.BoltStore.SetUint64(k, v))
}

// applyStalled is the FSM's word that the store could not be written
// for want of space: the node notes it and, if it leads, hands
// leadership to another voter (once at a time; a one-node cluster has
// none, and keeps waiting with nothing acknowledged).
func (n *Node) applyStalled(err error) {
	if n.writes.note(fileStore, err) == nil {
		return
	}
	r := n.rp.Load()
	if r == nil || r.State() != raft.Leader || !n.handingOver.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer n.handingOver.Store(false)
		if err := r.LeadershipTransfer().Error(); err != nil {
			n.log.Warn("the store cannot be written; leadership not handed over", "err", err)
			return
		}
		n.log.Warn("the store cannot be written; leadership handed over")
	}()
}

// WriteErrors counts the writes of this node's Raft log, stable store
// and store that failed since it started.
func (n *Node) WriteErrors() uint64 { return n.writes.errors.Load() }

// WriteProblem is why this node's last write of its Raft log or of its
// store failed (a full disk: "no space left on device"), or "" when the
// last writes succeeded: a node with a problem cannot commit or lead.
func (n *Node) WriteProblem() string { return n.writes.current() }
