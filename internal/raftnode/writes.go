package raftnode

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// A node whose disk is full (or failing) cannot append to its Raft log
// nor record its term and vote. Raft copes: a leader that cannot append
// steps down and a follower that cannot append refuses the entries, so
// nothing is acknowledged that is not durable on a quorum, and the node
// catches up once it can write again, without a restart. What Raft does
// not do is say so. watchedLogs counts every failed write of the log
// and stable store and keeps the node's write problem (Node.WriteProblem)
// from the first failure until the next write that succeeds, logging
// each change once.

// writeHealth is a node's record of its failed writes.
type writeHealth struct {
	log    *slog.Logger
	errors atomic.Uint64
	mu     sync.Mutex
	// problem is the last failed write's error, "" once a write
	// succeeded after it.
	problem string
}

// note records the outcome of one write and returns err.
func (w *writeHealth) note(err error) error {
	if err != nil {
		w.errors.Add(1)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err != nil && w.problem == "":
		w.problem = err.Error()
		w.log.Error("the raft log cannot be written: this node can neither commit nor lead until it can",
			"err", err)
	case err != nil:
		w.problem = err.Error()
	case w.problem != "":
		w.problem = ""
		w.log.Info("the raft log can be written again", "failed_writes", w.errors.Load())
	}
	return err
}

func (w *writeHealth) current() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.problem
}

// watchedLogs is raft-boltdb's log and stable store, each write noted
// in a writeHealth.
type watchedLogs struct {
	*raftboltdb.BoltStore
	w *writeHealth
}

func (s watchedLogs) StoreLog(l *raft.Log) error { return s.w.note(s.BoltStore.StoreLog(l)) }

func (s watchedLogs) StoreLogs(ls []*raft.Log) error { return s.w.note(s.BoltStore.StoreLogs(ls)) }

func (s watchedLogs) DeleteRange(min, max uint64) error {
	return s.w.note(s.BoltStore.DeleteRange(min, max))
}

func (s watchedLogs) Set(k, v []byte) error { return s.w.note(s.BoltStore.Set(k, v)) }

func (s watchedLogs) SetUint64(k []byte, v uint64) error {
	return s.w.note(s.BoltStore.SetUint64(k, v))
}

// WriteErrors counts the writes of this node's Raft log and stable store
// that failed since it started.
func (n *Node) WriteErrors() uint64 { return n.writes.errors.Load() }

// WriteProblem is why this node's last write of its Raft log or stable
// store failed (a full disk: "no space left on device"), or "" when the
// last write succeeded: a node with a problem cannot commit or lead.
func (n *Node) WriteProblem() string { return n.writes.current() }
