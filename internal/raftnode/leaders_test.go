package raftnode

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/testwait"
)

// idleHeartbeats is how many heartbeats from its leader each follower
// must see while the test's CPU is busy.
const idleHeartbeats = 60

// TestIdleClusterKeepsItsLeader runs a 3-node cluster with LANTiming,
// idle (under the race detector and whatever load the host has: run it
// with the cores busy), until each follower has heard idleHeartbeats
// heartbeats from its leader. No node may see the leadership move
// meanwhile: the same leader, the same term and no leader change counted
// anywhere. (Busy loops inside the test process would compete with Raft
// in the Go scheduler, as no work of an idle appliance does; e2e's
// TestFailoverIdleSiteKeepsLeader busies the host's cores against real
// nodes.)
func TestIdleClusterKeepsItsLeader(t *testing.T) {
	ms := tunedCluster(t, 3, func(c *raft.Config) { LANTiming.apply(c) })
	leader := waitReady(t, ms)
	knowLeader(t, ms, leader)
	term := leader.node.Term()
	changes := map[string]uint64{}
	for _, m := range ms {
		changes[m.id] = m.node.LeaderChanges()
	}

	heard := map[string]int{}
	last := map[string]time.Time{}
	testwait.For(t, "each follower to hear its leader's heartbeats", 2*time.Minute, func() bool {
		done := true
		for _, m := range ms {
			if m == leader {
				continue
			}
			if c := m.node.raft.LastContact(); !c.Equal(last[m.id]) {
				last[m.id] = c
				heard[m.id]++
			}
			done = done && heard[m.id] >= idleHeartbeats
		}
		return done
	})
	for _, m := range ms {
		if id, _ := m.node.Leader(); id != leader.id {
			t.Errorf("%s: leader %q, want %q", m.id, id, leader.id)
		}
		if got := m.node.Term(); got != term {
			t.Errorf("%s: term %d, want %d: an election while idle", m.id, got, term)
		}
		if got := m.node.LeaderChanges() - changes[m.id]; got != 0 {
			t.Errorf("%s: saw %d leader changes while idle, want none", m.id, got)
		}
	}
}

// knowLeader waits until every member knows leader as its leader.
func knowLeader(t *testing.T, ms []*member, leader *member) {
	t.Helper()
	testwait.For(t, "every node to know the leader", 30*time.Second, func() bool {
		for _, m := range ms {
			if id, _ := m.node.Leader(); id != leader.id {
				return false
			}
		}
		return true
	})
}
