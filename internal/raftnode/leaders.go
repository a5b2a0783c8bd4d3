package raftnode

import "github.com/hashicorp/raft"

// leaderTerm is a leader as a node saw it: a node in a term.
type leaderTerm struct {
	id   raft.ServerID
	term uint64
}

// countLeaderChanges counts, until the node closes, the times this node
// sees a leader other than the one it knew, or the same one in a later
// term: an election that changed nothing still counts. A follower that
// loses sight of its leader and hears it again in the same term counts
// nothing. The first leader it sees does not count.
func (n *Node) countLeaderChanges() {
	ch := make(chan raft.Observation, 64)
	obs := raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.raft.RegisterObserver(obs)
	defer n.raft.DeregisterObserver(obs)
	var last leaderTerm
	for {
		select {
		case o := <-ch:
			lo := o.Data.(raft.LeaderObservation)
			if lo.LeaderID == "" {
				continue
			}
			cur := leaderTerm{lo.LeaderID, n.raft.CurrentTerm()}
			if last != (leaderTerm{}) && cur != last {
				n.leaderChanges.Add(1)
				n.log.Info("leader changed", "id", n.cfg.ID, "leader", string(cur.id), "term", cur.term,
					"was", string(last.id), "was_term", last.term)
			}
			last = cur
		case <-n.stop:
			return
		}
	}
}

// LeaderChanges counts the times this node has seen the leadership move
// since it opened: to another node, or to a later term.
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// Term is this node's current Raft term.
func (n *Node) Term() uint64 { return n.raft.CurrentTerm() }
