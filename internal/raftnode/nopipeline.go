package raftnode

import "github.com/hashicorp/raft"

// noPipeline is the Raft transport with pipelined replication turned off:
// Raft then sends each follower one AppendEntries at a time (of up to
// MaxAppendEntries entries, which the group commit fills).
//
// hashicorp/raft v1.7.3's pipeline can stop replicating to a follower for
// good: when the follower answers an AppendEntries with Success=false (it
// lacks the previous entry: a node that restarted or fell behind, as
// after a CA renewal resets its connections), pipelineDecode returns and
// nothing reads the pipeline's done channel any more; the send loop may
// still hand one more request to the pipeline, which then blocks for
// ever, and with it the follower's replication, while its heartbeats go
// on, so no election heals it. Raft.Shutdown then waits for that
// goroutine for ever too. It was seen here (central's TestRotateCA hung
// in Close 1 run in 20) and upstream (hashicorp/raft#612; grafana/pyroscope
// turned the pipeline off for it). Without the pipeline, a follower that
// is behind is sent older entries until it catches up, and nothing waits
// on a reader that is gone.
type noPipeline struct{ *raft.NetworkTransport }

// AppendEntriesPipeline refuses, so Raft replicates without a pipeline.
func (noPipeline) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}
