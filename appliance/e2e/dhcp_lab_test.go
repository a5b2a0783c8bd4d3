package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"

	"github.com/outposthq/outpost/appliance/internal/client"
	"github.com/outposthq/outpost/appliance/internal/lab"
	"github.com/outposthq/outpost/internal/pki"
)

// siteIface is the name of every host's port on the site's network, each
// in its own namespace.
const siteIface = "eth0"

// netSite is a site whose nodes each run in a network namespace of their
// own, all joined to one L2 network: a "switch" namespace holding a
// bridge, with a veth to every node and to a client namespace. Nodes talk
// to one another (API, Raft) over that network, and serve DHCP on it.
//
// The cluster harness starts nodes with exec.Command(c.bin, n.args...);
// here c.bin is iproute2's ip and each node's args begin with
// "netns exec <ns> applianced": ip execs applianced in place, so the
// process the harness signals and waits for is applianced itself.
type netSite struct {
	*cluster
	client *lab.Netns            // the DHCP clients' and the tests' host
	sw     *lab.Netns            // the switch: attachToSwitch cables more hosts to it
	ns     map[string]*lab.Netns // each node's namespace, by node ID
	addr   map[string]netip.Addr // each node's address on the network
	// caPEM and caFingerprint are the site's API CA, as n1 wrote it to
	// its data directory: the nodes' APIs serve HTTPS on the network,
	// and the tests and joining nodes pin this CA.
	caPEM         []byte
	caFingerprint string
}

// startNetSite starts a site of size nodes (198.18.0.11, .12, ...): n1
// bootstraps, the others join it, and it returns once every node sees
// the same leader and all voters. The client namespace has 198.18.0.2.
func startNetSite(t *testing.T, size int) *netSite {
	t.Helper()
	c := newCluster(t) // builds applianced, or skips under -short
	lab.Require(t, "root", "ip")
	appliancedBin := c.bin
	ip, err := lookIPRoute2()
	if err != nil {
		t.Fatal(err)
	}
	sw := lab.NewNetns(t, "switch")
	sw.Bridge("br0", "")
	s := &netSite{cluster: c, sw: sw, ns: map[string]*lab.Netns{}, addr: map[string]netip.Addr{}}
	s.client = attachToSwitch(t, sw, "client", "198.18.0.2/24")
	c.bin = ip
	c.http = s.client.HTTPClient()

	artifacts := t.TempDir()
	var first *node
	for i := 1; i <= size; i++ {
		id := fmt.Sprintf("n%d", i)
		addr := netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)})
		ns := attachToSwitch(t, sw, id, addr.String()+"/24")
		s.ns[id], s.addr[id] = ns, addr
		n := &node{
			id:      id,
			dataDir: filepath.Join(c.dir, id),
			apiURL:  "https://" + addr.String() + ":7000",
			args: []string{
				"netns", "exec", ns.Name, appliancedBin,
				"-id", id,
				"-data-dir", filepath.Join(c.dir, id),
				"-api-addr", addr.String() + ":7000",
				"-raft-addr", addr.String() + ":7001",
				"-dhcp-interface", siteIface,
				"-boot-addr", addr.String() + ":8080",
				"-artifact-dir", artifacts,
				"-log-level", "debug",
			},
		}
		if first != nil {
			n.args = append(n.args, "-join", first.apiURL, "-join-ca-fingerprint", s.caFingerprint)
			n.env = []string{"OUTPOST_JOIN_TOKEN=" + c.token}
		}
		c.nodes = append(c.nodes, n)
		c.start(n)
		if first == nil {
			first = n
			c.token = c.waitAdminToken(n)
			s.pinCA(t, n)
		}
	}
	c.waitFormed(c.nodes...)
	return s
}

// pinCA reads the site's API CA from n's data directory (written before
// its API serves) and makes the tests' client pin it.
func (s *netSite) pinCA(t *testing.T, n *node) {
	t.Helper()
	var err error
	if s.caPEM, err = os.ReadFile(filepath.Join(n.dataDir, "api-ca.pem")); err != nil {
		t.Fatal(err)
	}
	if s.caFingerprint, err = pki.PEMFingerprint(s.caPEM); err != nil {
		t.Fatalf("%s/api-ca.pem: %v", n.dataDir, err)
	}
	s.cluster.http = s.client.HTTPSClient(s.pinned(t))
}

// pinned is a TLS client configuration that pins the site's API CA.
func (s *netSite) pinned(t *testing.T) *tls.Config {
	t.Helper()
	tc, err := pki.PinnedTLS(s.caFingerprint, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// attachToSwitch creates namespace name with siteIface (address cidr) cabled to
// the switch's bridge.
func attachToSwitch(t *testing.T, sw *lab.Netns, name, cidr string) *lab.Netns {
	t.Helper()
	ns := lab.NewNetns(t, name)
	port := "p-" + name
	sw.VethPair(t, ns, port, "", siteIface, cidr)
	if _, err := sw.Run(t.Context(), "ip", "link", "set", port, "master", "br0"); err != nil {
		t.Fatal(err)
	}
	return ns
}

// lookIPRoute2 finds iproute2's ip in PATH or the sbin directories.
func lookIPRoute2() (string, error) {
	if p, err := exec.LookPath("ip"); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, "ip"); isExecutable(p) {
			return p, nil
		}
	}
	return "", errors.New("e2e: iproute2's ip not found")
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// api is a client for node id's API, dialing from inside its namespace.
func (s *netSite) api(id string) *client.Client {
	return client.NewWithHTTP(s.node(id).apiURL, s.token, s.ns[id].HTTPSClient(s.pinned(s.t)))
}

// dhcpReply is one DHCP reply as the client network saw it.
type dhcpReply struct {
	at     time.Time
	xid    dhcpv4.TransactionID
	mac    string
	typ    dhcpv4.MessageType
	server netip.Addr // option 54
	yiaddr netip.Addr
}

// dhcpTap is a DHCP client host: one UDP socket on port 68 of an
// interface, through which any number of simulated clients (distinct
// MACs) run exchanges at once. It records every reply on the wire and
// when each transaction was first sent, so that a test can check what
// the servers did, not only what a client accepted.
//
// Why not nclient4: it returns the first matching reply only (a second
// server's duplicate OFFER would go unseen), and it needs a module
// (mdlayher/packet) this module does not require.
type dhcpTap struct {
	conn *net.UDPConn

	mu      sync.Mutex
	seen    []dhcpReply
	sent    map[dhcpv4.TransactionID]time.Time // first send of each transaction
	waiters map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	done    chan struct{}
}

// newDHCPTap opens port 68 on iface inside ns, until the test ends.
func newDHCPTap(t *testing.T, ns *lab.Netns, iface string) *dhcpTap {
	t.Helper()
	var conn *net.UDPConn
	err := ns.Do(func() (err error) {
		conn, err = server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: dhcpv4.ClientPort})
		return err
	})
	if err != nil {
		t.Fatalf("dhcp client socket on %s: %v", iface, err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	d := &dhcpTap{
		conn:    conn,
		sent:    map[dhcpv4.TransactionID]time.Time{},
		waiters: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{},
		done:    make(chan struct{}),
	}
	go d.read()
	t.Cleanup(func() {
		conn.Close()
		<-d.done
	})
	return d
}

func (d *dhcpTap) read() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := d.conn.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		at := time.Now()
		msg, err := dhcpv4.FromBytes(buf[:n])
		if err != nil || msg.OpCode != dhcpv4.OpcodeBootReply {
			continue
		}
		r := dhcpReply{at: at, xid: msg.TransactionID, mac: msg.ClientHWAddr.String(), typ: msg.MessageType()}
		r.server, _ = netip.AddrFromSlice(msg.ServerIdentifier().To4())
		r.yiaddr, _ = netip.AddrFromSlice(msg.YourIPAddr.To4())
		d.mu.Lock()
		d.seen = append(d.seen, r)
		ch := d.waiters[msg.TransactionID]
		d.mu.Unlock()
		if ch != nil {
			select {
			case ch <- msg:
			default: // the exchange has more than it can use
			}
		}
	}
}

// replies returns every reply seen so far.
func (d *dhcpTap) replies() []dhcpReply {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dhcpReply(nil), d.seen...)
}

// firstSent returns when each transaction was first sent.
func (d *dhcpTap) firstSent() map[dhcpv4.TransactionID]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[dhcpv4.TransactionID]time.Time, len(d.sent))
	for k, v := range d.sent {
		out[k] = v
	}
	return out
}

func (d *dhcpTap) send(msg *dhcpv4.DHCPv4) error {
	d.mu.Lock()
	if _, ok := d.sent[msg.TransactionID]; !ok {
		d.sent[msg.TransactionID] = time.Now()
	}
	d.mu.Unlock()
	_, err := d.conn.WriteTo(msg.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ServerPort})
	return err
}

// errNak is a DORA refused with a NAK.
var errNak = errors.New("NAK")

// errNoAnswer is a DORA that got no (matching) answer after its retries.
var errNoAnswer = errors.New("no answer")

// dora runs one DISCOVER-OFFER-REQUEST-ACK exchange for mac, as a client
// would: each message is retransmitted with a doubling timeout (timeout,
// then twice, ...; tries in all), the REQUEST names the server of the
// first OFFER and only that server's ACK or NAK counts. It returns the
// ACK, or errNak or errNoAnswer.
func (d *dhcpTap) dora(ctx context.Context, mac net.HardwareAddr, timeout time.Duration, tries int) (*dhcpv4.DHCPv4, error) {
	discover, err := dhcpv4.NewDiscovery(mac, dhcpv4.WithBroadcast(true))
	if err != nil {
		return nil, err
	}
	ch, unwatch := d.watch(discover.TransactionID)
	defer unwatch()
	offer, err := d.roundTrip(ctx, discover, ch, timeout, tries, func(m *dhcpv4.DHCPv4) bool {
		return m.MessageType() == dhcpv4.MessageTypeOffer
	})
	if err != nil {
		return nil, fmt.Errorf("DISCOVER: %w", err)
	}
	request, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true))
	if err != nil {
		return nil, err
	}
	sid := offer.ServerIdentifier()
	ack, err := d.roundTrip(ctx, request, ch, timeout, tries, func(m *dhcpv4.DHCPv4) bool {
		t := m.MessageType()
		return (t == dhcpv4.MessageTypeAck || t == dhcpv4.MessageTypeNak) && m.ServerIdentifier().Equal(sid)
	})
	if err != nil {
		return nil, fmt.Errorf("REQUEST to %s: %w", sid, err)
	}
	if ack.MessageType() == dhcpv4.MessageTypeNak {
		return nil, fmt.Errorf("REQUEST to %s: %w: %s", sid, errNak, ack.Message())
	}
	return ack, nil
}

// watch returns the replies to transaction xid, until unwatch.
func (d *dhcpTap) watch(xid dhcpv4.TransactionID) (replies <-chan *dhcpv4.DHCPv4, unwatch func()) {
	ch := make(chan *dhcpv4.DHCPv4, 16)
	d.mu.Lock()
	d.waiters[xid] = ch
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(d.waiters, xid)
		d.mu.Unlock()
	}
}

func (d *dhcpTap) roundTrip(ctx context.Context, msg *dhcpv4.DHCPv4, ch <-chan *dhcpv4.DHCPv4, timeout time.Duration, tries int, match func(*dhcpv4.DHCPv4) bool) (*dhcpv4.DHCPv4, error) {
	for range tries {
		if err := d.send(msg); err != nil {
			return nil, err
		}
		t := time.NewTimer(timeout)
	wait:
		for {
			select {
			case m := <-ch:
				if match(m) {
					t.Stop()
					return m, nil
				}
			case <-t.C:
				break wait
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
		}
		timeout *= 2
	}
	return nil, errNoAnswer
}
