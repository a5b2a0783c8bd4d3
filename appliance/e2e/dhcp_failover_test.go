package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
)

const (
	failoverMACs      = 150                    // distinct clients in the stream
	failoverWorkers   = 8                      // exchanges at once
	failoverPace      = 25 * time.Millisecond  // a new client starts this often
	failoverKillAfter = 50                     // ACKs before the leader is killed
	doraTimeout       = 400 * time.Millisecond // first retransmission timeout
	doraTries         = 3                      // sends of each message per DORA
)

// TestDHCPFailover runs a stream of DHCP clients against a 3-node site on
// one L2 network and SIGKILLs the leader in the middle of it. The site
// must keep serving under the new leader, every address must go to one
// MAC only, every ACKed lease must be on both survivors, and only the
// leader may answer (no follower's duplicate OFFER).
func TestDHCPFailover(t *testing.T) {
	s := startNetSite(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	sub := store.Subnet{
		CIDR:      "198.18.0.0/24",
		Pools:     []store.Range{{Start: "198.18.0.100", End: "198.18.0.250"}},
		Discovery: true,
	}
	if err := s.api("n1").Put(ctx, "subnets", "lab", sub, nil); err != nil {
		t.Fatalf("put subnet: %v", err)
	}
	leader := s.node(s.waitFormed(s.nodes...))
	leaderAddr := s.addr[leader.id]
	var survivors []*node
	for _, n := range s.nodes {
		if n != leader {
			survivors = append(survivors, n)
		}
	}
	tap := newDHCPTap(t, s.client, siteIface)

	// The site serves before the stream starts: one client, retried
	// while the leader's DHCP server sees the new subnet.
	warm := failoverMAC(0xffff)
	s.waitFor(30*time.Second, "a first ACK", func() error {
		_, err := tap.dora(ctx, warm, doraTimeout, doraTries)
		return err
	})

	st := startDORAStream(ctx, tap, failoverMACs)
	s.waitFor(60*time.Second, fmt.Sprintf("%d ACKs before the kill", failoverKillAfter), func() error {
		if n := st.ackCount(); n < failoverKillAfter {
			return fmt.Errorf("%d ACKs", n)
		}
		return nil
	})
	killStart := time.Now()
	s.kill(leader)
	killed := time.Now()
	t.Logf("killed leader %s (%s) with %d ACKs", leader.id, leaderAddr, st.ackCount())
	newLeader := s.waitNewLeader(survivors, leader.id)
	t.Logf("%s leads %v after the kill", newLeader, time.Since(killed).Round(time.Millisecond))
	// The killed leader's port refused a survivor's probe: the election
	// did not wait for Raft's heartbeat timeout.
	refused := 0.0
	for _, n := range survivors {
		refused += siteMetric(t, s, n, refusedProbes)
	}
	if refused == 0 {
		t.Errorf("no survivor's probe of the killed leader's port was refused (%s)", refusedProbes)
	}

	select {
	case <-st.done:
	case <-ctx.Done():
		t.Fatalf("stream did not end: %v", ctx.Err())
	}
	checkKeptServing(t, st, killed)
	replies := tap.replies()
	checkOneMACPerAddress(t, replies)
	checkServerIDs(t, s, replies, tap.firstSent(), leader, killStart, killed)
	for _, n := range survivors {
		checkACKedLeases(ctx, t, s, n, replies)
	}
}

// failoverMAC is the i-th test client's address (locally administered).
func failoverMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xe2, 0xd0, 0x00, byte(i >> 8), byte(i)}
}

// ackRec is an ACK a client accepted.
type ackRec struct {
	mac    string
	ip     netip.Addr
	server netip.Addr
	at     time.Time
}

// doraStream runs DORAs for n clients, a new one every failoverPace, at most
// failoverWorkers at once; a client whose DORA fails starts over until
// it gets an ACK or ctx ends.
type doraStream struct {
	done chan struct{}

	mu     sync.Mutex
	acks   []ackRec
	failed map[string]error
	naks   int
	silent int
}

func startDORAStream(ctx context.Context, tap *dhcpTap, n int) *doraStream {
	st := &doraStream{done: make(chan struct{}), failed: map[string]error{}}
	queue := make(chan net.HardwareAddr)
	go func() {
		defer close(queue)
		tick := time.NewTicker(failoverPace)
		defer tick.Stop()
		for i := range n {
			select {
			case queue <- failoverMAC(i):
			case <-ctx.Done():
				return
			}
			<-tick.C
		}
	}()
	var wg sync.WaitGroup
	for range failoverWorkers {
		wg.Go(func() {
			for m := range queue {
				st.run(ctx, tap, m)
			}
		})
	}
	go func() {
		wg.Wait()
		close(st.done)
	}()
	return st
}

// run gets one client a lease, starting over after a NAK or silence.
func (st *doraStream) run(ctx context.Context, tap *dhcpTap, m net.HardwareAddr) {
	for {
		ack, err := tap.dora(ctx, m, doraTimeout, doraTries)
		st.mu.Lock()
		switch {
		case err == nil:
			ip, _ := netip.AddrFromSlice(ack.YourIPAddr.To4())
			sid, _ := netip.AddrFromSlice(ack.ServerIdentifier().To4())
			st.acks = append(st.acks, ackRec{mac: m.String(), ip: ip, server: sid, at: time.Now()})
		case ctx.Err() != nil:
			st.failed[m.String()] = err
		case errors.Is(err, errNak):
			st.naks++
		default:
			st.silent++
		}
		st.mu.Unlock()
		if err == nil || ctx.Err() != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (st *doraStream) ackCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.acks)
}

func (st *doraStream) results() ([]ackRec, map[string]error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.acks), maps.Clone(st.failed)
}

// checkKeptServing checks that every client got a lease and that enough
// of them got it after the kill.
func checkKeptServing(t *testing.T, st *doraStream, killed time.Time) {
	t.Helper()
	acks, failed := st.results()
	st.mu.Lock()
	naks, silent := st.naks, st.silent
	st.mu.Unlock()
	for m, err := range failed {
		t.Errorf("client %s got no lease: %v", m, err)
	}
	after := 0
	var firstAfter time.Time
	for _, a := range acks {
		if a.at.After(killed) {
			after++
			if firstAfter.IsZero() || a.at.Before(firstAfter) {
				firstAfter = a.at
			}
		}
	}
	t.Logf("%d clients ACKed, %d after the kill (first %v after it); %d NAKs, %d DORAs without answer",
		len(acks), after, firstAfter.Sub(killed).Round(time.Millisecond), naks, silent)
	if after < failoverMACs/3 {
		t.Errorf("%d ACKs after the kill, want at least %d: the site did not keep serving", after, failoverMACs/3)
	}
}

// checkOneMACPerAddress fails the test if any address was ACKed, on the
// wire, to two MACs.
func checkOneMACPerAddress(t *testing.T, replies []dhcpReply) {
	t.Helper()
	owner := map[netip.Addr]string{}
	for _, r := range replies {
		if r.typ != dhcpv4.MessageTypeAck {
			continue
		}
		if !r.yiaddr.IsValid() || r.yiaddr.IsUnspecified() {
			t.Errorf("ACK from %s to %s without an address", r.server, r.mac)
			continue
		}
		if o, ok := owner[r.yiaddr]; ok && o != r.mac {
			t.Errorf("%s ACKed to %s and to %s (the second by %s)", r.yiaddr, o, r.mac, r.server)
		}
		owner[r.yiaddr] = r.mac
	}
}

// checkServerIDs checks the server identifier of every reply: always a
// node's address; for every exchange that began and ended before the
// kill, the leader's alone (a follower answered nothing); for every
// exchange begun after the kill, a survivor's.
func checkServerIDs(t *testing.T, s *netSite, replies []dhcpReply, sent map[dhcpv4.TransactionID]time.Time, leader *node, killStart, killed time.Time) {
	t.Helper()
	nodeOf := map[netip.Addr]string{}
	for id, a := range s.addr {
		nodeOf[a] = id
	}
	byXID := map[dhcpv4.TransactionID][]dhcpReply{}
	for _, r := range replies {
		if _, ok := nodeOf[r.server]; !ok {
			t.Errorf("%s from server identifier %q, not a node's address (xid %s, %s)", r.typ, r.server, r.xid, r.mac)
		}
		byXID[r.xid] = append(byXID[r.xid], r)
	}
	var before, after int
	var bad []string
	for xid, rs := range byXID {
		first, ok := sent[xid]
		if !ok {
			bad = append(bad, fmt.Sprintf("xid %s: replies to a transaction never sent", xid))
			continue
		}
		servers := map[string]bool{}
		last := first
		for _, r := range rs {
			servers[nodeOf[r.server]] = true
			if r.at.After(last) {
				last = r.at
			}
		}
		switch {
		case last.Before(killStart):
			before++
			if len(servers) != 1 || !servers[leader.id] {
				bad = append(bad, fmt.Sprintf("xid %s (%s) before the kill: answered by %v, want the leader %s alone: %s",
					xid, rs[0].mac, sortedKeys(servers), leader.id, describeReplies(rs)))
			}
		case first.After(killed):
			after++
			if servers[leader.id] {
				bad = append(bad, fmt.Sprintf("xid %s (%s) begun after the kill: answered by the dead %s: %s", xid, rs[0].mac, leader.id, describeReplies(rs)))
			}
		}
	}
	t.Logf("%d replies to %d transactions: %d ended before the kill, %d begun after it", len(replies), len(byXID), before, after)
	if before == 0 || after == 0 {
		t.Errorf("%d transactions before the kill and %d after: the stream did not span the failover", before, after)
	}
	slices.Sort(bad)
	for i, b := range bad {
		if i == 10 {
			t.Errorf("... and %d more", len(bad)-i)
			break
		}
		t.Error(b)
	}
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func describeReplies(rs []dhcpReply) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s from %s", r.typ, r.server))
	}
	return strings.Join(parts, ", ")
}

// checkACKedLeases checks that every lease ACKed on the wire is active on n,
// read linearizably.
func checkACKedLeases(ctx context.Context, t *testing.T, s *netSite, n *node, replies []dhcpReply) {
	t.Helper()
	var page struct{ Items []store.Lease }
	if err := s.api(n.id).Do(ctx, http.MethodGet, "/v1/leases?consistent=true", nil, &page); err != nil {
		t.Errorf("%s: list leases: %v", n.id, err)
		return
	}
	byIP := map[string]store.Lease{}
	for _, l := range page.Items {
		byIP[l.IP] = l
	}
	now := time.Now()
	checked := map[netip.Addr]bool{}
	var bad []string
	for _, r := range replies {
		if r.typ != dhcpv4.MessageTypeAck || checked[r.yiaddr] {
			continue
		}
		checked[r.yiaddr] = true
		l, ok := byIP[r.yiaddr.String()]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s (%s, ACKed by %s): no lease", r.yiaddr, r.mac, r.server))
		case l.MAC != r.mac || l.State != store.LeaseActive || !l.Expires.After(now):
			bad = append(bad, fmt.Sprintf("%s (%s, ACKed by %s): lease %s %s until %s", r.yiaddr, r.mac, r.server, l.MAC, l.State, l.Expires.Format(time.RFC3339)))
		}
	}
	slices.Sort(bad)
	if len(bad) > 10 {
		bad = append(bad[:10], fmt.Sprintf("... and %d more", len(bad)-10))
	}
	if len(bad) > 0 {
		t.Errorf("survivor %s: %d of %d ACKed leases missing or wrong:\n%s", n.id, len(bad), len(checked), strings.Join(bad, "\n"))
	} else {
		t.Logf("survivor %s holds all %d ACKed leases, active (%d leases in all)", n.id, len(checked), len(page.Items))
	}
}
