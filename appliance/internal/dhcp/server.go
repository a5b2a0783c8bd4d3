package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/ipv4"

	"github.com/outposthq/outpost/appliance/internal/machinetrace"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/clock"
)

// Config configures the DHCP server.
type Config struct {
	// Interfaces are the network interfaces to serve, by name. Each must
	// have an IPv4 address: it is the server identifier and next-server
	// of replies sent out of it.
	Interfaces []string
	// Proxy makes the server a proxyDHCP server (boot information only)
	// for sites whose addresses come from another DHCP server.
	Proxy bool
	// HTTPPort is the port of the boot HTTP service (package httpboot) on
	// this node's addresses.
	HTTPPort int
	// Files names the iPXE binaries; DefaultBootFiles if zero.
	Files BootFiles
	// OfferHold is how long an offered address is kept for its client;
	// 30s if zero.
	OfferHold time.Duration
	// Quarantine is how long a DECLINEd address stays out of the pool;
	// 10 minutes if zero.
	Quarantine time.Duration
	// ProbeWait is how long the server waits for a host to answer its
	// ARP probe of an address no lease holds, before offering it (see
	// probe.go): 200ms if zero; a negative value turns probing off.
	// Only subnets on a served interface's link are probed.
	ProbeWait time.Duration
	// ConflictQuarantine is how long an address a host answered a probe
	// for stays out of the pool, for every client; Quarantine if zero.
	ConflictQuarantine time.Duration
	// ReclaimAfter is how long an ended lease is kept (sticky for its
	// client) before the leader deletes it; 24h if zero.
	ReclaimAfter time.Duration
	// Workers bounds the packets decoded and decided at once; twice
	// GOMAXPROCS if zero. A worker does not wait for a lease's commit
	// (see Commits), so it is busy only while it computes.
	Workers int
	// Commits bounds the leases of REQUESTs being committed at once; 1024
	// if zero. Each is on a goroutine of its own (kept for the next one
	// when it is done) that sends the ACK when its commit lands; commits in flight share the node's group commit, so many
	// are cheap. A REQUEST that finds every one taken is dropped (the
	// client retransmits).
	Commits int
	// Leader says whether this node leads its site.
	Leader Leader
	// Leases commits leases.
	Leases Leases
	// Store is this node's store, which subnets, machines and leases are
	// read from.
	Store *store.DB
	// Traces finds the trace a machine's exchanges belong to (its latest
	// workflow's); nil makes one over Store. It may be shared with the
	// node's other boot servers.
	Traces *machinetrace.Index
	Log    *slog.Logger
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// Monotonic is a clock that never steps (time elapsed since a fixed
	// point), against which forward steps of Now are seen
	// (clock.StepGuard): for a lease time after one, other MACs' leases,
	// holds and quarantines are judged as of before the step, so no
	// address a live client holds goes to another, nor is reclaimed. Nil
	// means Go's monotonic clock when Now is nil too, and no step guard
	// when Now is set without it (a test's clock that jumps to expire
	// leases).
	Monotonic func() time.Duration
}

// Leader is what the server needs to know of this node's leadership:
// only a ready leader answers, and its allocators are rebuilt from the
// store whenever it becomes leader again.
type Leader interface {
	IsReadyLeader() bool
	LeaderEpoch() uint64
}

// Leases is where the server commits leases (package site's proposer).
type Leases interface {
	// CommitLease commits a lease and reports whether it only renewed
	// the client's active lease.
	CommitLease(ctx context.Context, l *store.Lease) (renewed bool, err error)
	// ReclaimLease deletes an ended lease unless it changed since it was
	// read at version.
	ReclaimLease(ctx context.Context, ip string, version uint64) error
	// QuarantineAddress records that the host mac answered a probe of ip
	// in subnet, and keeps the address from every client for
	// quarantine.
	QuarantineAddress(ctx context.Context, subnet, ip, mac string, quarantine time.Duration) error
}

// Server is the DHCP server.
type Server struct {
	cfg   Config
	db    *store.DB
	log   *slog.Logger
	now   func() time.Time
	conns []*iface

	pools     atomic.Pointer[poolSet]
	rebuildMu sync.Mutex
	work      chan packet
	// commits holds a token per committer goroutine (Config.Commits),
	// busy or idle; an idle one waits on idle for its next commit, and
	// all of them end when stopCommits is closed (Serve, at its end).
	// committing counts the commits in flight, which Serve waits for.
	commits     chan struct{}
	idle        chan func()
	stopCommits chan struct{}
	committing  sync.WaitGroup

	traces    *machinetrace.Index
	exchanges exchanges
	// probers probe addresses before they are offered, by interface
	// name (Listen; none in proxy mode or with probing off).
	probers map[string]*prober
	// steps guards leases across forward steps of now (Monotonic); nil:
	// no guard.
	steps *clock.StepGuard
}

// iface is one served interface and its socket.
type iface struct {
	name string
	addr netip.Addr // the interface's IPv4 address
	conn net.PacketConn
	// pc reads conn with each packet's destination address (IP_PKTINFO),
	// which tells a client's unicast to this server from a broadcast.
	pc   *ipv4.PacketConn
	port int // 67, or 4011 for a proxy's PXE boot-server socket
}

type packet struct {
	in   *iface
	peer net.Addr
	data []byte
	// unicast says the packet was sent to the interface's own address,
	// not broadcast: a client renewing (RFC 2131 4.4.5), whose ciaddr
	// then says which subnet it is on (see subnetFor).
	unicast bool
}

// New checks the configuration and returns a server. Listen binds it.
func New(cfg Config) (*Server, error) {
	if cfg.Leader == nil || cfg.Leases == nil || cfg.Store == nil || cfg.Log == nil {
		return nil, errors.New("dhcp: Leader, Leases, Store and Log are required")
	}
	if cfg.Files == (BootFiles{}) {
		cfg.Files = DefaultBootFiles
	}
	if cfg.OfferHold == 0 {
		cfg.OfferHold = 30 * time.Second
	}
	if cfg.Quarantine == 0 {
		cfg.Quarantine = 10 * time.Minute
	}
	if cfg.ProbeWait == 0 {
		cfg.ProbeWait = 200 * time.Millisecond
	}
	if cfg.ConflictQuarantine == 0 {
		cfg.ConflictQuarantine = cfg.Quarantine
	}
	if cfg.ReclaimAfter == 0 {
		cfg.ReclaimAfter = 24 * time.Hour
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.Commits == 0 {
		cfg.Commits = 1024
	}
	s := &Server{cfg: cfg, db: cfg.Store, log: cfg.Log, now: cfg.Now, work: make(chan packet, 1024),
		commits: make(chan struct{}, cfg.Commits), idle: make(chan func()), stopCommits: make(chan struct{}),
		probers: map[string]*prober{}}
	if s.now == nil {
		s.now = time.Now
		if cfg.Monotonic == nil {
			cfg.Monotonic = clock.Monotonic()
		}
	}
	if cfg.Monotonic != nil {
		s.steps = clock.NewStepGuard(s.now, cfg.Monotonic, s.log)
	}
	if s.traces = cfg.Traces; s.traces == nil {
		s.traces = machinetrace.New(cfg.Store, machinetrace.Config{Now: s.now})
	}
	return s, nil
}

// Listen binds a socket on each configured interface (port 67, and 4011
// in proxy mode). Call it before Serve; it fails if an interface is
// missing, has no IPv4 address, or the port is taken.
func (s *Server) Listen() error {
	for _, name := range s.cfg.Interfaces {
		addr, err := interfaceAddr(name)
		if err != nil {
			s.Close()
			return err
		}
		ports := []int{dhcpv4.ServerPort}
		if s.cfg.Proxy {
			ports = append(ports, 4011)
		}
		for _, port := range ports {
			conn, err := server4.NewIPv4UDPConn(name, &net.UDPAddr{Port: port})
			if err != nil {
				s.Close()
				return fmt.Errorf("dhcp: listen on %s port %d: %w", name, port, err)
			}
			// Bursts of a boot storm queue in the kernel, not on the wire.
			_ = conn.SetReadBuffer(8 << 20)
			_ = conn.SetWriteBuffer(4 << 20)
			pc := ipv4.NewPacketConn(conn)
			if err := pc.SetControlMessage(ipv4.FlagDst, true); err != nil {
				conn.Close()
				s.Close()
				return fmt.Errorf("dhcp: listen on %s port %d: packets' destination addresses: %w", name, port, err)
			}
			s.conns = append(s.conns, &iface{name: name, addr: addr, conn: conn, pc: pc, port: port})
		}
		s.listenProbe(name)
		s.log.Info("dhcp listening", "interface", name, "address", addr, "proxy", s.cfg.Proxy)
	}
	return nil
}

// listenProbe opens the interface's ARP prober, unless probing is off or
// the server is a proxy (it offers no addresses). Without one (no
// CAP_NET_RAW), the interface's subnets are served unprobed.
func (s *Server) listenProbe(name string) {
	if s.cfg.Proxy || s.cfg.ProbeWait < 0 {
		return
	}
	p, err := dialProber(name, s.log)
	if err != nil {
		s.log.Warn("dhcp: addresses on this interface are offered without a conflict probe", "interface", name, "err", err)
		return
	}
	s.probers[name] = p
}

func interfaceAddr(name string) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp: interface %q: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("dhcp: interface %q: %w", name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			// A link-local address is not the server's: the leader's
			// 169.254.169.254 (package linklocal) may be there, left
			// for a few seconds by a killed process.
			if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && ipn.IP.To4() != nil && !ip.IsLinkLocalUnicast() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("dhcp: interface %q has no IPv4 address but link-local ones", name)
}

// Serve handles packets until ctx ends, then closes the sockets.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range s.work {
				s.serveOne(ctx, p)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.reclaim(ctx)
	}()
	var readers sync.WaitGroup
	for _, in := range s.conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			s.read(in)
		}()
	}
	<-ctx.Done()
	s.Close()
	readers.Wait()
	close(s.work)
	wg.Wait()
	s.committing.Wait()
	close(s.stopCommits)
	return nil
}

// read reads one socket until it is closed, handing packets to workers.
func (s *Server) read(in *iface) {
	buf := make([]byte, 1500)
	for {
		n, cm, peer, err := in.pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("dhcp read", "interface", in.name, "err", err)
			}
			return
		}
		if !s.cfg.Leader.IsReadyLeader() {
			continue // the leader answers; see the package doc
		}
		p := packet{in: in, peer: peer, data: append([]byte(nil), buf[:n]...),
			unicast: cm != nil && in.addr.AsSlice() != nil && cm.Dst.Equal(in.addr.AsSlice())}
		select {
		case s.work <- p:
		default:
			dropped.Inc()
		}
	}
}

// Close closes the sockets. It is safe to call more than once.
func (s *Server) Close() {
	for _, in := range s.conns {
		in.conn.Close()
	}
	for _, p := range s.probers {
		p.Close()
	}
}

func (s *Server) serveOne(ctx context.Context, p packet) {
	req, err := dhcpv4.FromBytes(p.data)
	if err != nil {
		s.log.Debug("dhcp: malformed packet", "interface", p.in.name, "peer", p.peer, "err", err)
		malformed.Inc()
		return
	}
	s.dispatch(ctx, req, p.in, p.unicast, s.goCommit, func(reply *dhcpv4.DHCPv4, dst net.Addr) {
		if reply == nil {
			return
		}
		if _, err := p.in.conn.WriteTo(reply.ToBytes(), dst); err != nil && ctx.Err() == nil {
			s.log.Warn("dhcp: send reply", "interface", p.in.name, "to", dst, "err", err)
		}
	})
}

// goCommit runs a lease's commit on a committer goroutine, an idle one
// or a new one, unless Config.Commits are busy already. Committers
// outlive their commit: a new goroutine per commit grew its stack again
// through the commit, the ACK and its log line, at every exchange.
func (s *Server) goCommit(run func()) bool {
	s.committing.Add(1)
	select {
	case s.idle <- run:
		return true
	default:
	}
	select {
	case s.commits <- struct{}{}:
	default:
		s.committing.Done()
		return false
	}
	go s.committer(run)
	return true
}

// committer runs run, then each commit goCommit hands it, until
// stopCommits is closed.
func (s *Server) committer(run func()) {
	defer func() { <-s.commits }()
	for {
		run()
		s.committing.Done()
		select {
		case run = <-s.idle:
		case <-s.stopCommits:
			return
		}
	}
}
