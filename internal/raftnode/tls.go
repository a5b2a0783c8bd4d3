package raftnode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/outposthq/outpost/internal/pki"
)

// The application protocols (ALPN) of the Raft port.
const (
	// ProtoRaft is hashicorp/raft's RPCs.
	ProtoRaft = "outpost-raft/1"
	// ProtoHTTP is the node-to-node HTTP calls (TLS.Internal). It is
	// HTTP/1.1's own: net/http serves a connection that agreed on any
	// other protocol only through a TLSNextProto handler.
	ProtoHTTP = "http/1.1"
)

// Limits of the TLS stream layer.
const (
	// handshakeTimeout bounds a TLS handshake, either way.
	handshakeTimeout = 10 * time.Second
	// maxHandshakes bounds the handshakes in progress on the Raft port,
	// and maxHandshakesPerIP those from one address, so that a stranger
	// who opens connections and says nothing holds up no member for long;
	// a connection over either is closed at once.
	maxHandshakes      = 256
	maxHandshakesPerIP = 16
	// recheckInterval is how often open Raft connections are checked
	// again, so that a member removed (or rekeyed) since its handshake is
	// cut off.
	recheckInterval = time.Second
)

// TLS secures a node's Raft port with mutual TLS between members.
type TLS struct {
	// Identity is this node's key pair and certificate.
	Identity *pki.Identity
	// Trust holds the cluster's CA certificates.
	Trust *pki.Trust
	// Member looks a node up in the side's member records: the key
	// fingerprints its record admits (one, or two while the member
	// rotates its key; none for a record of an older release, which pins
	// no key: any key the CA signed for the id is admitted until the
	// node registers its own), and whether it has a record. It is asked
	// at every handshake, in both directions, and again every
	// recheckInterval for open connections.
	Member func(id string) (keys []string, found bool)
	// Internal, if not nil, is served on the Raft port to members (ALPN
	// ProtoHTTP): the calls a follower makes to its leader. HTTPClient
	// reaches it on a peer.
	Internal http.Handler
}

// errStarting refuses connections that arrive before Raft runs.
var errStarting = errors.New("raftnode: the node is starting")

// Why admit refuses a peer.
var (
	errNotMember = errors.New("no member of the cluster has this id")
	errOtherKey  = errors.New("the member's recorded key is another")
)

// admit is the check every peer passes, after its certificate chained to
// the CA: it is in the Raft configuration as this node knows it (a node
// that knows none, being about to join, skips this), and its member
// record pins its key, or no key yet. A node that is joining admits the
// members its join named (SetJoinTrust) while its store has no record of
// them: the log may bring the record of an early member before that of
// the leader.
func (n *Node) admit(p pki.Peer) error {
	r := n.rp.Load()
	if r == nil {
		return errStarting
	}
	servers := r.GetConfiguration().Configuration().Servers
	known := len(servers) == 0
	for _, s := range servers {
		known = known || string(s.ID) == p.ID
	}
	if !known {
		return fmt.Errorf("%s is not in the raft configuration", p.ID)
	}
	keys, found := n.cfg.TLS.Member(p.ID)
	if !found {
		keys, found = n.joinTrust(p.ID)
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "" })
	switch {
	case !found:
		return errNotMember
	case len(keys) > 0 && !slices.Contains(keys, p.Fingerprint):
		return errOtherKey
	}
	return nil
}

// joinTrust looks id up in the members a joining node's join named. The
// node has joined once its store holds its own record, which its
// admission wrote after every member's then: the names are forgotten.
func (n *Node) joinTrust(id string) ([]string, bool) {
	seed := n.seed.Load()
	if seed == nil {
		return nil, false
	}
	if _, joined := n.cfg.TLS.Member(n.cfg.ID); joined {
		n.seed.Store(nil)
		return nil, false
	}
	fp, ok := (*seed)[id]
	return []string{fp}, ok
}

// SetJoinTrust names the members (id -> key fingerprint) a joining node
// admits while its store has no record of them (admit): those its join
// answer named.
func (n *Node) SetJoinTrust(members map[string]string) {
	m := maps.Clone(members)
	n.seed.Store(&m)
}

// tlsStream is a raft.StreamLayer over mutual TLS. It accepts on the Raft
// port, does every handshake in its own goroutine (bounded in time and
// number), and hands Raft connections to Raft and HTTP ones to the
// internal server. It keeps the open Raft connections, and cuts those
// whose peer stops being admitted.
type tlsStream struct {
	ln             net.Listener
	adv            net.Addr
	server, client *tls.Config
	httpClient     *tls.Config
	trust          *pki.Trust
	verify         func(pki.Peer) error
	log            *slog.Logger
	warn           throttle

	raftc, httpc chan net.Conn
	serveHTTP    bool // TLS.Internal is served
	sem          chan struct{}
	done         chan struct{}
	closeOnce    sync.Once

	mu      sync.Mutex
	conns   map[*peerConn]struct{}
	pending map[string]int // handshakes in progress by remote IP
	// epoch counts ResetConnections (changed under mu): a connection
	// whose handshake began in an earlier epoch is refused when it is
	// tracked, for it may carry the identity the reset was meant to
	// replace (a handshake in flight while the node renewed).
	epoch uint64
}

func newTLSStream(bind string, adv net.Addr, t *TLS, verify func(pki.Peer) error, log *slog.Logger) (*tlsStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	s := &tlsStream{
		ln: ln, adv: adv, trust: t.Trust, verify: verify, log: log,
		server:     pki.ServerConfig(t.Identity, t.Trust, verify, ProtoRaft, ProtoHTTP),
		client:     pki.ClientConfig(t.Identity, t.Trust, verify, ProtoRaft),
		httpClient: pki.ClientConfig(t.Identity, t.Trust, verify, ProtoHTTP),
		raftc:      make(chan net.Conn), httpc: make(chan net.Conn),
		sem: make(chan struct{}, maxHandshakes), done: make(chan struct{}),
		conns: map[*peerConn]struct{}{}, pending: map[string]int{}, serveHTTP: t.Internal != nil,
	}
	go s.acceptLoop()
	go s.recheckLoop()
	return s, nil
}

func (s *tlsStream) acceptLoop() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn("raft port: accept", "err", err)
			select {
			case <-s.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if !s.startHandshake(c) {
			s.warn.log(s.log, "raft port: too many handshakes in progress; connection closed", "remote", c.RemoteAddr().String())
			c.Close()
		}
	}
}

// startHandshake runs c's handshake in its own goroutine, unless too many
// are in progress, in all or from c's address.
func (s *tlsStream) startHandshake(c net.Conn) bool {
	ip := c.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[ip] >= maxHandshakesPerIP {
		return false
	}
	select {
	case s.sem <- struct{}{}:
	default:
		return false
	}
	s.pending[ip]++
	go func() {
		s.handshake(c)
		<-s.sem
		s.mu.Lock()
		if s.pending[ip]--; s.pending[ip] == 0 {
			delete(s.pending, ip)
		}
		s.mu.Unlock()
	}()
	return true
}

// handshake secures an accepted connection and hands it on by its
// protocol.
func (s *tlsStream) handshake(c net.Conn) {
	epoch := s.currentEpoch()
	tc := tls.Server(c, s.server)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if errors.Is(err, io.EOF) {
		// Closed before a byte: a follower's probe of a silent leader
		// (probe.go), or a port scan.
		s.log.Debug("raft port: connection closed before its handshake", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	if err != nil {
		s.warn.log(s.log, "raft port: refused a connection", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	var out chan net.Conn
	var conn net.Conn = tc
	switch tc.ConnectionState().NegotiatedProtocol {
	case ProtoRaft:
		pc, err := s.track(tc, x509.ExtKeyUsageClientAuth, epoch)
		if err != nil {
			tc.Close()
			return
		}
		out, conn = s.raftc, pc
	case ProtoHTTP:
		if !s.serveHTTP {
			tc.Close()
			return
		}
		out = s.httpc
	default:
		s.warn.log(s.log, "raft port: no protocol agreed; connection closed", "remote", c.RemoteAddr().String())
		tc.Close()
		return
	}
	select {
	case out <- conn:
	case <-s.done:
		conn.Close()
	}
}

// Accept hands Raft its next connection (raft.StreamLayer).
func (s *tlsStream) Accept() (net.Conn, error) {
	select {
	case c := <-s.raftc:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Dial connects to a peer's Raft port (raft.StreamLayer).
func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	epoch := s.currentEpoch()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.client}
	c, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	if tc.ConnectionState().NegotiatedProtocol != ProtoRaft {
		tc.Close()
		return nil, fmt.Errorf("raftnode: %s does not speak %s", addr, ProtoRaft)
	}
	pc, err := s.track(tc, x509.ExtKeyUsageServerAuth, epoch)
	if err != nil {
		tc.Close()
		return nil, err
	}
	return pc, nil
}

// Addr is the advertised address (raft.StreamLayer).
func (s *tlsStream) Addr() net.Addr { return s.adv }

// Close stops accepting and closes every open Raft connection.
func (s *tlsStream) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.ln.Close()
		s.mu.Lock()
		conns := s.conns
		s.conns = map[*peerConn]struct{}{}
		s.mu.Unlock()
		for c := range conns {
			c.Conn.Close()
		}
	})
	return nil
}

// peerConn is a Raft connection with the peer its handshake verified.
type peerConn struct {
	*tls.Conn
	peer pki.Peer
	use  x509.ExtKeyUsage
	s    *tlsStream
	once sync.Once
}

func (c *peerConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// errReset refuses a connection whose handshake began before
// ResetConnections.
var errReset = errors.New("raftnode: the connection was made before the node reset its connections")

func (s *tlsStream) currentEpoch() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// track verifies a connection's peer again, as use (a client or a server
// certificate), and keeps the connection for recheckLoop; a connection
// whose handshake began before the epoch now (ResetConnections) is
// refused.
func (s *tlsStream) track(tc *tls.Conn, use x509.ExtKeyUsage, epoch uint64) (*peerConn, error) {
	p, err := s.trust.Verify(tc.ConnectionState().PeerCertificates, use, time.Now())
	if err != nil {
		return nil, err
	}
	pc := &peerConn{Conn: tc, peer: p, use: use, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return nil, net.ErrClosed
	default:
	}
	if s.epoch != epoch {
		return nil, errReset
	}
	s.conns[pc] = struct{}{}
	return pc, nil
}

// recheckLoop closes the open Raft connections of peers that are no
// longer admitted: removed from the cluster, rekeyed, or expired.
func (s *tlsStream) recheckLoop() {
	t := time.NewTicker(recheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		conns := make([]*peerConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			_, err := s.trust.Verify([]*x509.Certificate{c.peer.Certificate}, c.use, time.Now())
			if err == nil {
				err = s.verify(c.peer)
			}
			if err != nil {
				s.log.Warn("raft port: closed the connection of a peer no longer admitted", "peer", c.peer.ID, "remote", c.RemoteAddr().String(), "err", err)
				c.Close()
			}
		}
	}
}

// httpListener hands the internal HTTP server its connections.
type httpListener struct{ s *tlsStream }

func (l httpListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.s.httpc:
		return c, nil
	case <-l.s.done:
		return nil, net.ErrClosed
	}
}

func (l httpListener) Close() error   { return nil }
func (l httpListener) Addr() net.Addr { return l.s.adv }

// ErrHandshake means a TLS handshake with a peer failed, most often
// because this node did not admit the peer: nothing was sent.
var ErrHandshake = errors.New("raftnode: TLS handshake with the peer failed")

// dialHTTP connects to a peer's Raft port for an internal HTTP call.
// Failing to connect is a *net.OpError of Op "dial"; a failed handshake
// wraps ErrHandshake.
func (s *tlsStream) dialHTTP(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: handshakeTimeout}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, s.httpClient)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrHandshake, addr, err)
	}
	return tc, nil
}

// throttle limits a kind of warning to one every 10 s; the others go to
// the debug level and are counted in the next warning.
type throttle struct {
	last       atomic.Int64
	suppressed atomic.Int64
}

func (t *throttle) log(l *slog.Logger, msg string, args ...any) {
	now, last := time.Now().UnixNano(), t.last.Load()
	if now-last < int64(10*time.Second) || !t.last.CompareAndSwap(last, now) {
		t.suppressed.Add(1)
		l.Debug(msg, args...)
		return
	}
	if n := t.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Warn(msg, args...)
}

// ResetConnections closes this node's connections with its peers, Raft's
// both ways and the internal HTTP client's idle ones, so that the next
// are made with the identity's current key and certificate (after
// pki.Identity.CommitKey, or a renewal under a new CA generation).
func (n *Node) ResetConnections() {
	n.trans.CloseStreams()
	if n.client != nil {
		n.client.CloseIdleConnections()
	}
	if s := n.stream; s != nil {
		s.mu.Lock()
		s.epoch++
		conns := make([]*peerConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
}

// PeerCertificates are the certificates the peers of this node's open
// Raft connections presented, by node id (the newest connection's when
// a peer has several); none without TLS.
func (n *Node) PeerCertificates() map[string]*x509.Certificate {
	out := map[string]*x509.Certificate{}
	s := n.stream
	if s == nil {
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if cur, ok := out[c.peer.ID]; !ok || c.peer.Certificate.NotBefore.After(cur.NotBefore) {
			out[c.peer.ID] = c.peer.Certificate
		}
	}
	return out
}

// HTTPClient calls the internal HTTP endpoints of members at their Raft
// addresses ("https://" + addr + path), over mutual TLS; nil without
// Config.TLS.
func (n *Node) HTTPClient() *http.Client { return n.client }

// members serves h to admitted peers only, checked again at each request
// (a keep-alive connection outlives a membership change), and puts the
// peer in the request's context (PeerFrom).
func (n *Node) members(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := pki.PeerOf(n.cfg.TLS.Trust, r.TLS)
		if err == nil {
			err = n.admit(p)
		}
		if err != nil {
			// The connection may be one the caller made with a key it
			// has since rotated away: let it make a new one.
			w.Header().Set("Connection", "close")
			http.Error(w, "not a member of this cluster", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerKey{}, p)))
	})
}

type peerKey struct{}

// PeerFrom returns the member that made an internal HTTP call.
func PeerFrom(ctx context.Context) (pki.Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(pki.Peer)
	return p, ok
}
