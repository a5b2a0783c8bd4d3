package raftnode

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/command"
)

// Group commit. Raft appends and replicates whatever is proposed while
// it writes, but each proposal stays its own log entry: under load the
// log, the replication messages and the state machine pay per command.
// The batcher packs the commands proposed while earlier groups are in
// flight into one Batch entry: every proposer in it shares one append,
// one fsync, one replication message and one store transaction, and a
// group grows with the load. It is the only group-commit layer: Raft's
// BatchApplyCh stays off.

const (
	// maxGroup bounds the commands in one Batch entry.
	maxGroup = 1024
	// maxGroupBytes bounds a Batch entry's size.
	maxGroupBytes = 4 << 20
	// groupsInFlight is how many Batch entries may be uncommitted at once:
	// two lets the log append of one overlap the store commit of another.
	groupsInFlight = 2
	// commitTimeout bounds how long a group waits to enter Raft.
	commitTimeout = 30 * time.Second
)

type proposal struct {
	cmd  []byte
	done chan outcome
}

type outcome struct {
	index  uint64
	result any
	err    error
}

type batcher struct {
	raft     *raft.Raft
	in       chan *proposal
	inflight chan struct{}
	// groups are the groups gathered, to commit: groupsInFlight
	// goroutines take them for the batcher's life rather than one
	// goroutine each (a new goroutine grows its stack again through
	// Raft's Apply, at every commit of a light load). run closes it.
	groups chan []*proposal
	stop   chan struct{}
}

func newBatcher(r *raft.Raft) *batcher {
	b := &batcher{
		raft:     r,
		in:       make(chan *proposal, maxGroup),
		inflight: make(chan struct{}, groupsInFlight),
		groups:   make(chan []*proposal, groupsInFlight),
		stop:     make(chan struct{}),
	}
	go b.run()
	for range groupsInFlight {
		go b.commitEach()
	}
	return b
}

// commitEach commits the groups run gathers, each in turn, until run
// has closed groups and every group in it is committed.
func (b *batcher) commitEach() {
	for g := range b.groups {
		b.commit(g)
	}
}

func (b *batcher) close() { close(b.stop) }

// run takes a slot, then gathers every proposal waiting (at least one)
// into a group and hands it to a committer (commitEach): it never waits,
// since a slot is taken for each group until it is committed.
func (b *batcher) run() {
	defer close(b.groups)
	for {
		select {
		case b.inflight <- struct{}{}:
		case <-b.stop:
			return
		}
		var group []*proposal
		select {
		case p := <-b.in:
			group = append(group, p)
		case <-b.stop:
			return
		}
		size := len(group[0].cmd)
	gather:
		for len(group) < maxGroup && size < maxGroupBytes {
			select {
			case p := <-b.in:
				group = append(group, p)
				size += len(p.cmd)
			default:
				break gather
			}
		}
		b.groups <- group
	}
}

func (b *batcher) commit(group []*proposal) {
	defer func() { <-b.inflight }()
	if len(group) == 1 {
		idx, resp, err := b.apply(group[0].cmd)
		group[0].done <- outcome{idx, resp, err}
		return
	}
	cmds := make([][]byte, len(group))
	for i, p := range group {
		cmds[i] = p.cmd
	}
	idx, resp, err := b.apply(command.EncodeBatch(cmds))
	results, ok := resp.(batchResult)
	if err == nil && (!ok || len(results) != len(group)) {
		err = fmt.Errorf("raftnode: a batch of %d commands was answered with %T", len(group), resp)
	}
	for i, p := range group {
		if err != nil {
			p.done <- outcome{err: err}
			continue
		}
		p.done <- outcome{index: idx, result: results[i]}
	}
}

// apply commits one log entry and returns its index and response.
func (b *batcher) apply(cmd []byte) (uint64, any, error) {
	f := b.raft.Apply(cmd, commitTimeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			return 0, nil, fmt.Errorf("%w: %w", ErrNotLeader, err) // never entered the log
		case errors.Is(err, raft.ErrLeadershipLost):
			return 0, nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		return 0, nil, fmt.Errorf("raftnode: commit: %w", err)
	}
	return f.Index(), f.Response(), nil
}
