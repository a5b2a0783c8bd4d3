package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Group commit. Raft batches the logs that arrive while it writes the
// previous batch, but hands them to the FSM in whatever groups committed
// together, so under load the FSM commits (and fsyncs) many small
// batches. The batcher packs the commands that arrive while earlier
// groups are in flight into one Batch log entry: every writer in it shares
// one log append and one store commit, and a group grows with the load.

// Batch is the type of a log entry that carries several commands. Its
// payload is a sequence of (uvarint length, command) pairs. Its commands
// are applied in order at the entry's index; each has its own Result.
const Batch Type = 19

const (
	// maxGroup bounds the commands in one Batch entry.
	maxGroup = 1024
	// maxGroupBytes bounds a Batch entry's size.
	maxGroupBytes = 4 << 20
	// groupsInFlight is how many Batch entries may be uncommitted at once:
	// two lets the log append of one overlap the store commit of another.
	groupsInFlight = 2
	// proposeTimeout bounds how long a group waits to enter Raft.
	proposeTimeout = 30 * time.Second
)

type proposal struct {
	cmd  []byte
	done chan proposalResult
}

type proposalResult struct {
	res Result
	err error
}

type batcher struct {
	raft     *raft.Raft
	in       chan *proposal
	inflight chan struct{}
	stop     chan struct{}
}

func newBatcher(r *raft.Raft) *batcher {
	b := &batcher{
		raft:     r,
		in:       make(chan *proposal, maxGroup),
		inflight: make(chan struct{}, groupsInFlight),
		stop:     make(chan struct{}),
	}
	go b.run()
	return b
}

func (b *batcher) close() { close(b.stop) }

// run takes a slot, then gathers every proposal waiting (at least one) into
// a group and commits it in the background.
func (b *batcher) run() {
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
		go b.commit(group)
	}
}

func (b *batcher) commit(group []*proposal) {
	defer func() { <-b.inflight }()
	if len(group) == 1 {
		res, err := b.apply(group[0].cmd)
		group[0].done <- proposalResult{res, err}
		return
	}
	res, err := b.apply(encodeBatch(group))
	for i, p := range group {
		switch {
		case err != nil:
			p.done <- proposalResult{err: err}
		case i >= len(res.Batch):
			p.done <- proposalResult{err: fmt.Errorf("replica: batch answered %d of %d commands", len(res.Batch), len(group))}
		default:
			r := res.Batch[i]
			var perr error
			if r.Err != nil {
				perr = r.Err
			}
			p.done <- proposalResult{res: r, err: perr}
		}
	}
}

func (b *batcher) apply(cmd []byte) (Result, error) {
	f := b.raft.Apply(cmd, proposeTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			return Result{}, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
		}
		return Result{}, fmt.Errorf("replica: apply: %w", err)
	}
	return decodeResult(f.Response())
}

func encodeBatch(group []*proposal) []byte {
	n := 1
	for _, p := range group {
		n += binary.MaxVarintLen64 + len(p.cmd)
	}
	buf := make([]byte, 1, n)
	buf[0] = byte(Batch)
	for _, p := range group {
		buf = binary.AppendUvarint(buf, uint64(len(p.cmd)))
		buf = append(buf, p.cmd...)
	}
	return buf
}

// splitBatch returns a Batch payload's commands or panics on a malformed
// one (see mustDecode).
func splitBatch(payload []byte, index uint64) [][]byte {
	var cmds [][]byte
	for len(payload) > 0 {
		n, k := binary.Uvarint(payload)
		if k <= 0 || uint64(len(payload)-k) < n {
			panic(fmt.Sprintf("replica: decode batch at index %d: truncated command", index))
		}
		cmds = append(cmds, payload[k:k+int(n)])
		payload = payload[k+int(n):]
	}
	return cmds
}
