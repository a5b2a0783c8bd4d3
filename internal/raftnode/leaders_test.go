package raftnode

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/testwait"
)

// idleHeartbeats is how many heartbeats from its leader each follower
// must see while the test's CPU is busy.
const idleHeartbeats = 60

// TestIdleClusterKeepsItsLeader runs a 3-node cluster with LANTiming,
// idle while every core is kept busy by spinning goroutines (the race
// detector and any other load on the host come on top), until each
// follower has heard idleHeartbeats heartbeats from its leader. No node
// may see the leadership move meanwhile: the same leader, the same term
// and no leader change counted anywhere.
func TestIdleClusterKeepsItsLeader(t *testing.T) {
	ms := tunedCluster(t, 3, func(c *raft.Config) { LANTiming.apply(c) })
	leader := waitReady(t, ms)
	testwait.For(t, "every node to know the leader", 30*time.Second, func() bool {
		for _, m := range ms {
			if id, _ := m.node.Leader(); id != leader.id {
				return false
			}
		}
		return true
	})
	term := leader.node.Term()
	changes := map[string]uint64{}
	for _, m := range ms {
		changes[m.id] = m.node.LeaderChanges()
	}

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	for range runtime.NumCPU() {
		go spin(ctx)
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
	stop()

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

// spin keeps a core busy until ctx ends.
func spin(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		if i%1024 == 0 {
			runtime.Gosched()
		}
	}
}
