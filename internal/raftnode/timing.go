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

// LANTiming suits a site: appliances of two cores or more on one LAN,
// where a round trip is well under a millisecond and the fsyncs of an
// election (the term, the vote, the new leader's entries) take
// milliseconds. A dead leader is noticed 250 to 750 ms after its last
// heartbeat (a quarter of hashicorp/raft's defaults), and the site's DHCP
// answers again about half a second after its death (outpost-bench
// dhcp.failover: 2.7 s with the defaults). The lease is as
// long as Raft allows (Heartbeat): a leader steps down only when a quorum
// has not answered any of its heartbeats, sent every 25 to 50 ms, for a
// quarter of a second. Pre-vote keeps a follower that misses heartbeats
// on a loaded host from moving the term. A leader whose process waits
// for a CPU longer than Heartbeat still loses its followers: appliances
// raise their priority for it (appliance config raft.nice; outpost-bench
// raft.idle counts the leader changes of an idle site with every core
// busy).
var LANTiming = Timing{Heartbeat: 250 * time.Millisecond, Election: 250 * time.Millisecond, LeaderLease: 250 * time.Millisecond}

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
