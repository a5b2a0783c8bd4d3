package raftnode

import (
	"context"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/testwait"
)

// testProbe probes often and waits long: a loaded test host may take a
// while to answer a loopback SYN, never a second.
var testProbe = Probe{After: 150 * time.Millisecond, Timeout: time.Second}

// probedCluster is a 3-node cluster whose followers probe a silent
// leader, and whose Raft timeouts are then raised to a minute: only the
// probe can move the leadership within a test's waits.
func probedCluster(t *testing.T) ([]*member, *member) {
	t.Helper()
	ms := newCluster(t, 3, func(m *member) { m.probe = testProbe })
	leader := waitReady(t, ms)
	knowLeader(t, ms, leader)
	for _, m := range ms {
		slow(t, m, time.Minute)
	}
	return ms, leader
}

// slow sets m's heartbeat and election timeouts to d.
func slow(t *testing.T, m *member, d time.Duration) {
	t.Helper()
	rc := m.node.raft.ReloadableConfig()
	rc.HeartbeatTimeout, rc.ElectionTimeout = d, d
	if err := m.node.raft.ReloadConfig(rc); err != nil {
		t.Fatal(err)
	}
}

// kill ends m's Raft and closes its port without handing leadership
// over: to its followers it is a process that died.
func kill(t *testing.T, m *member) {
	t.Helper()
	if err := m.node.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	m.node.trans.Close()
}

// TestProbeRefusedElectsAtOnce kills a 3-node cluster's leader: its port
// refuses, so a follower's probe says so and that follower starts an
// election, and a new leader is ready although Raft's own timeout (a
// minute) is far off.
func TestProbeRefusedElectsAtOnce(t *testing.T) {
	ms, leader := probedCluster(t)
	term := leader.node.Term()
	kill(t, leader)
	var next *member
	testwait.For(t, "a new ready leader", 30*time.Second, func() bool {
		for _, m := range ms {
			if m != leader && m.node.IsReady() {
				next = m
				return true
			}
		}
		return false
	})
	if got := next.node.Term(); got <= term {
		t.Errorf("new leader %s in term %d, want past %d", next.id, got, term)
	}
	var refused, takeOvers uint64
	for _, m := range ms {
		if m == leader {
			continue
		}
		refused += m.node.ProbeCounts()[VerdictRefused]
		takeOvers += m.node.TakeOvers()
	}
	// Only the probe could have started the election: the order is
	// "refused", then a take-over, then the new leader.
	if refused == 0 || takeOvers == 0 {
		t.Errorf("refused probes %d, take-overs %d; want both > 0", refused, takeOvers)
	}
	if _, res, err := next.node.Propose(t.Context(), set("after", "1")); err != nil || res != "1" {
		t.Fatalf("propose on the new leader: %v, %v", res, err)
	}
}

// TestProbeAlivePausedLeaderStays replaces a 3-node cluster's leader
// with a port that accepts and never answers, as a leader's kernel does
// while its process is starved of CPU: the followers' probes find it
// alive and start nothing. Only Raft's own timeout, once lowered,
// elects another leader.
func TestProbeAlivePausedLeaderStays(t *testing.T) {
	ms, leader := probedCluster(t)
	term := leader.node.Term()
	kill(t, leader)
	ln := listenAgain(t, leader.addr)
	go holdConns(t.Context(), ln)
	testwait.For(t, "each follower to find the silent leader alive 5 times", 30*time.Second, func() bool {
		for _, m := range ms {
			if m != leader && m.node.ProbeCounts()[VerdictAlive] < 5 {
				return false
			}
		}
		return true
	})
	for _, m := range ms {
		if m == leader {
			continue
		}
		if n := m.node.TakeOvers(); n != 0 {
			t.Errorf("%s: %d take-overs of a leader that accepts", m.id, n)
		}
		if got := m.node.Term(); got != term {
			t.Errorf("%s: term %d, want %d: an election while the leader's port accepts", m.id, got, term)
		}
		if id, _ := m.node.Leader(); id != leader.id {
			t.Errorf("%s: leader %q, want %q", m.id, id, leader.id)
		}
	}
	for _, m := range ms {
		if m != leader {
			slow(t, m, time.Second)
		}
	}
	testwait.For(t, "Raft's timeout to elect another leader", 30*time.Second, func() bool {
		for _, m := range ms {
			if m != leader && m.node.IsReady() {
				return true
			}
		}
		return false
	})
	for _, m := range ms {
		if m != leader && m.node.TakeOvers() != 0 {
			t.Errorf("%s: a take-over of a leader that accepts", m.id)
		}
	}
}

// listenAgain listens on addr, which a node just closed.
func listenAgain(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	testwait.For(t, "the closed node's port to be free", 10*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

// holdConns accepts ln's connections and keeps them open, unanswered,
// until ctx ends.
func holdConns(ctx context.Context, ln net.Listener) {
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		held = append(held, c)
	}
}

func TestVerdict(t *testing.T) {
	tests := map[string]struct {
		err  error
		want string
	}{
		"accepted":    {nil, VerdictAlive},
		"refused":     {&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, VerdictRefused},
		"no answer":   {&net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, VerdictTimeout},
		"unreachable": {&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, VerdictUnreachable},
		"other":       {fmt.Errorf("dial: %w", syscall.ENETUNREACH), VerdictUnreachable},
	}
	for name, tc := range tests {
		if got := verdict(tc.err); got != tc.want {
			t.Errorf("%s: verdict %q, want %q", name, got, tc.want)
		}
	}
}

// A probe without a timeout is refused before the node opens.
func TestProbeNeedsTimeout(t *testing.T) {
	_, err := Open(Config{ID: "n1", Dir: t.TempDir(), BindAddr: "127.0.0.1:0", Probe: Probe{After: time.Second}}, nil)
	if err == nil {
		t.Fatal("opened with a probe of no timeout")
	}
}

// TestProbeByFormerLeader: a node that led, and so only checked its
// state rather than probing (leaderProbeCheck), probes its leader like
// any follower once it has handed the leadership over: its new leader
// killed, it finds the port closed and starts an election. (The third
// node is stopped too, so that its own probe and election cannot come
// first.)
func TestProbeByFormerLeader(t *testing.T) {
	ms := newCluster(t, 3, func(m *member) { m.probe = testProbe })
	former := waitReady(t, ms)
	knowLeader(t, ms, former)
	if err := former.node.raft.LeadershipTransfer().Error(); err != nil {
		t.Fatal(err)
	}
	var leader *member
	testwait.For(t, "another ready leader", 30*time.Second, func() bool {
		for _, m := range ms {
			if m != former && m.node.IsReady() {
				leader = m
				return true
			}
		}
		return false
	})
	knowLeader(t, ms, leader)
	for _, m := range ms {
		slow(t, m, time.Minute)
		if m != former {
			kill(t, m)
		}
	}
	testwait.For(t, "the former leader to find the new one's port closed and start an election", 30*time.Second, func() bool {
		return former.node.ProbeCounts()[VerdictRefused] > 0 && former.node.TakeOvers() > 0
	})
	// Stopped here, its Raft's complaints about the dead peers are not
	// logged after the test.
	former.stop()
}
