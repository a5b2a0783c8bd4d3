package raftnode

import (
	"time"

	"github.com/hashicorp/raft"
)

// Timing is Raft's failure detection. A follower that has heard nothing
// from its leader for Heartbeat (checked at random intervals between
// Heartbeat and twice that) asks the others for a pre-vote, and starts an
// election only if a quorum has lost the leader too: hashicorp/raft
// (v1.7) has pre-vote on, and a node that knows a leader refuses to
// pre-vote, so a follower starved of CPU for a while does not unseat a
// leader the others still hear. A leader that has not heard from a
// quorum within LeaderLease steps down (CheckQuorum). The leader sends
// heartbeats every Heartbeat/10 to Heartbeat/5.
type Timing struct {
	// Heartbeat is how long a follower goes without hearing from its
	// leader before it looks for another.
	Heartbeat time.Duration
	// Election is how long a candidate waits for votes before it tries
	// again (at random, between Election and twice that).
	Election time.Duration
	// LeaderLease is how long a leader goes on leading without hearing
	// from a quorum; at most Heartbeat.
	LeaderLease time.Duration
}

// LANTiming suits a site: appliances of two cores or more on one LAN.
// It is hashicorp/raft's heartbeat and election timeouts (1 s), with the
// lease as long as Raft allows: a leader steps down only when a quorum
// has not answered any of its heartbeats, sent every 100 to 200 ms, for
// a second. Shorter timeouts (250 ms) made an idle 3-node site on a host
// with every core busy change leaders 3 to 7 times in 3 to 4 minutes
// (outpost-bench raft.idle), against none at 1 s. Fast failover comes
// from the followers' probe of a silent leader instead (Probe,
// LANProbe): a leader whose process died is replaced within a few
// hundred milliseconds, one whose process is slow is not.
var LANTiming = Timing{Heartbeat: time.Second, Election: time.Second, LeaderLease: time.Second}

// apply sets rc's timeouts to t's; a zero t keeps them.
func (t Timing) apply(rc *raft.Config) {
	if t == (Timing{}) {
		return
	}
	rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = t.Heartbeat, t.Election, t.LeaderLease
	// Pre-vote is hashicorp/raft's default; it is what makes a short
	// Heartbeat safe on a loaded host, so it stays on here.
	rc.PreVoteDisabled = false
}
