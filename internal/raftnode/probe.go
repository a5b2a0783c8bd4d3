package raftnode

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// Probe is a follower's check of a silent leader that does not wait for
// the leader's process to be scheduled: while the follower has not heard
// from its leader for After, it connects to the leader's Raft port, at
// most once per tick of After/5, and closes the connection at once
// without writing. The leader's kernel accepts it even when its process
// waits for a CPU ("alive": nothing is done, Raft's own timeout still
// runs). "Refused" means the kernel answered and nothing listens: the
// process is dead, and the follower starts an election at once (the way
// a leadership transfer does: Raft's TimeoutNow, sent to itself), without
// waiting for Timing.Heartbeat. With more than one follower, the others
// wait Timeout per rank (their order by id) and act only if no leader has
// appeared meanwhile and their own probe still finds the port closed, so
// that they do not split the vote. No answer within Timeout ("timeout")
// or another error ("unreachable") may be a partition between this
// follower and a leader the others still hear: the follower leaves it to
// Raft's timeout and pre-vote.
type Probe struct {
	// After is how long a follower goes without hearing from its leader
	// before it probes; zero disables the probe.
	After time.Duration
	// Timeout is how long a probe waits for the leader's kernel to
	// answer, and how long each follower's rank delays its election.
	Timeout time.Duration
}

// LANProbe suits a site's LAN with LANTiming, where a round trip is well
// under a millisecond and a leader sends heartbeats every 100 to 200 ms:
// a follower probes only once a heartbeat is late.
var LANProbe = Probe{After: 250 * time.Millisecond, Timeout: 250 * time.Millisecond}

// Verdicts of a probe (ProbeCounts).
const (
	VerdictAlive       = "alive"
	VerdictRefused     = "refused"
	VerdictTimeout     = "timeout"
	VerdictUnreachable = "unreachable"
)

// Verdicts lists the verdicts a probe reaches.
var Verdicts = []string{VerdictAlive, VerdictRefused, VerdictTimeout, VerdictUnreachable}

// probeCounts counts the probes by verdict, in Verdicts' order.
type probeCounts [4]atomic.Uint64

// ProbeCounts returns how many probes of a silent leader this node made
// since it opened, by verdict.
func (n *Node) ProbeCounts() map[string]uint64 {
	out := make(map[string]uint64, len(Verdicts))
	for i, v := range Verdicts {
		out[v] = n.probes[i].Load()
	}
	return out
}

// TakeOvers counts the elections this node started because its probe
// found the leader's port closed.
func (n *Node) TakeOvers() uint64 { return n.takeOvers.Load() }

// leaderProbeCheck is how often a leader, which has no leader to probe,
// looks whether it still leads: each tick wakes the whole process, and
// Probe.After/5 (50 ms on a LAN) was most of an idle leader's work.
const leaderProbeCheck = time.Second

// probeLeader runs the follower's probe (Probe) until the node closes.
func (n *Node) probeLeader() {
	p := n.cfg.Probe
	period := p.After / 5
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if next := n.probePeriod(); next != period {
			period = next
			tick.Reset(period)
		}
		addr, id, ok := n.silentLeader()
		if !ok || n.probe(addr) != VerdictRefused {
			continue
		}
		term := n.raft.CurrentTerm()
		if n.takeOver(id, term) {
			n.waitTermMoves(term, 2*n.cfg.Timing.Heartbeat+2*time.Second)
		}
	}
}

// probePeriod is how often probeLeader ticks: every Probe.After/5 but
// on a leader.
func (n *Node) probePeriod() time.Duration {
	if n.raft.State() == raft.Leader {
		return leaderProbeCheck
	}
	return n.cfg.Probe.After / 5
}

// silentLeader returns the leader this follower knows and has not heard
// from for Probe.After.
func (n *Node) silentLeader() (raft.ServerAddress, raft.ServerID, bool) {
	if n.raft.State() != raft.Follower {
		return "", "", false
	}
	addr, id := n.raft.LeaderWithID()
	if addr == "" || time.Since(n.raft.LastContact()) < n.cfg.Probe.After {
		return "", "", false
	}
	return addr, id, true
}

// probe connects to addr, closes the connection and counts the verdict.
func (n *Node) probe(addr raft.ServerAddress) string {
	d := net.Dialer{Timeout: n.cfg.Probe.Timeout}
	c, err := d.DialContext(context.Background(), "tcp", string(addr))
	v := verdict(err)
	if c != nil {
		c.Close()
	}
	for i, name := range Verdicts {
		if name == v {
			n.probes[i].Add(1)
		}
	}
	n.log.Debug("probed the silent leader", "id", n.cfg.ID, "leader_addr", string(addr), "verdict", v,
		"silent", time.Since(n.raft.LastContact()).Round(time.Millisecond))
	return v
}

// verdict names a probe's outcome from its dial error.
func verdict(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return VerdictAlive
	case errors.Is(err, syscall.ECONNREFUSED):
		return VerdictRefused
	case errors.As(err, &ne) && ne.Timeout():
		return VerdictTimeout
	default:
		return VerdictUnreachable
	}
}

// takeOver starts an election on this node, after its rank's delay, if
// dead (the leader whose port refused) is still the leader it knows in
// term. It reports whether it did.
func (n *Node) takeOver(dead raft.ServerID, term uint64) bool {
	rank := n.rank(dead)
	if rank < 0 {
		return false
	}
	if rank > 0 {
		select {
		case <-n.stop:
			return false
		case <-time.After(time.Duration(rank) * n.cfg.Probe.Timeout):
		}
		addr, id, ok := n.silentLeader()
		if !ok || id != dead || n.raft.CurrentTerm() != term || n.probe(addr) != VerdictRefused {
			return false
		}
	}
	// TimeoutNow is what a leader sends the node it hands leadership to:
	// the node becomes a candidate at once and the others grant their
	// votes although they may not have given up on the leader yet.
	self := raft.ServerAddress(n.cfg.AdvertiseAddr)
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(n.cfg.ID), Addr: []byte(self),
	}}
	if err := n.trans.TimeoutNow(raft.ServerID(n.cfg.ID), self, req, &raft.TimeoutNowResponse{}); err != nil {
		n.log.Warn("starting an election after the leader's port refused", "id", n.cfg.ID, "err", err)
		return false
	}
	n.takeOvers.Add(1)
	n.log.Info("the leader's port refused; started an election", "id", n.cfg.ID, "leader", string(dead), "term", term, "rank", rank)
	return true
}

// rank is this node's place among the voters other than dead, by id; -1
// if it is not one of them.
func (n *Node) rank(dead raft.ServerID) int {
	servers, err := n.Servers()
	if err != nil {
		return -1
	}
	var ids []string
	for _, s := range servers {
		if s.Voter && s.ID != string(dead) {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return slices.Index(ids, n.cfg.ID)
}

// waitTermMoves waits until the term has moved past term, for at most d.
func (n *Node) waitTermMoves(term uint64, d time.Duration) {
	end := time.Now().Add(d)
	for n.raft.CurrentTerm() == term && time.Now().Before(end) {
		select {
		case <-n.stop:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
