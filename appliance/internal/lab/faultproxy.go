package lab

import (
	"net"
	"sync"
	"time"
)

// FaultMode is what a FaultProxy does to the traffic through it.
type FaultMode int

// Fault modes.
const (
	// Pass forwards traffic as it is (after Delay, if set).
	Pass FaultMode = iota
	// Blackhole accepts connections and reads from both sides but
	// forwards nothing and closes nothing: a link that went silent.
	Blackhole
	// Refuse closes new connections at once and cuts the open ones: a
	// link that is down.
	Refuse
)

// FaultProxy is a TCP proxy between two peers that can drop, delay,
// blackhole, cut and corrupt their connections, to test what each does
// when the link between them misbehaves. Its zero mode is Pass.
type FaultProxy struct {
	// Addr is where it listens; peers dial it instead of Target.
	Addr   string
	target string
	ln     net.Listener

	mu      sync.Mutex
	mode    FaultMode
	delay   time.Duration
	cutEach int64 // if > 0, every connection is cut after this many bytes either way
	flipArm bool  // the next connection flips the byte at flipAt from the target
	flipAt  int64
	flipped int // bytes flipped so far
	cut     int // connections CutAfter cut so far
	conns   map[*faultConn]bool
	closed  bool
	wg      sync.WaitGroup
}

type faultConn struct {
	a, b net.Conn
	once sync.Once
}

func (c *faultConn) close() {
	c.once.Do(func() {
		c.a.Close()
		c.b.Close()
	})
}

// StartFaultProxy listens on listen (host:port, port 0 for any) and
// forwards to target. It stops when t ends.
func StartFaultProxy(t T, listen, target string) *FaultProxy {
	t.Helper()
	return StartFaultProxyIn(t, nil, listen, target)
}

// StartFaultProxyIn is StartFaultProxy listening in namespace ns (nil: the
// test's own), while it dials target from the test's own namespace: peers
// in ns reach a server outside it, through the proxy.
func StartFaultProxyIn(t T, ns *Netns, listen, target string) *FaultProxy {
	t.Helper()
	var ln net.Listener
	var err error
	if ns != nil {
		ln, err = ns.Listen("tcp", listen)
	} else {
		ln, err = net.Listen("tcp", listen)
	}
	if err != nil {
		t.Fatalf("lab: fault proxy: %v", err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[*faultConn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// SetMode sets what happens to traffic from now on. Refuse cuts every
// open connection; the others act on open connections too.
func (p *FaultProxy) SetMode(m FaultMode) {
	p.mu.Lock()
	p.mode = m
	var cut []*faultConn
	if m == Refuse {
		for c := range p.conns {
			cut = append(cut, c)
		}
	}
	p.mu.Unlock()
	for _, c := range cut {
		c.close()
	}
}

// SetDelay delays every chunk of data forwarded by d (0: none).
func (p *FaultProxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// CutAfter cuts every connection once n bytes have crossed it in one
// direction, in the middle of whatever message they belong to (0: never).
func (p *FaultProxy) CutAfter(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutEach = n
}

// Cut is how many connections CutAfter cut so far: a test knows its
// cuts fell in the middle of the traffic, not after it.
func (p *FaultProxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// FlipByteAt corrupts the next connection accepted after the call, and
// only that one: the byte at offset of the stream from the target back to
// the client (counted from 0) is XOR-ed with 0xFF, as a link that damages
// data TCP's checksum misses would. Later connections pass unchanged.
func (p *FaultProxy) FlipByteAt(offset int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flipArm, p.flipAt = true, offset
}

// Flipped is how many bytes FlipByteAt corrupted so far.
func (p *FaultProxy) Flipped() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flipped
}

// takeFlip disarms FlipByteAt for a new connection and returns the offset
// it flips (-1: none).
func (p *FaultProxy) takeFlip() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.flipArm {
		return -1
	}
	p.flipArm = false
	return p.flipAt
}

// CutAll cuts every open connection now.
func (p *FaultProxy) CutAll() {
	p.mu.Lock()
	var cut []*faultConn
	for c := range p.conns {
		cut = append(cut, c)
	}
	p.mu.Unlock()
	for _, c := range cut {
		c.close()
	}
}

// Close stops the proxy and cuts its connections.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *FaultProxy) state() (FaultMode, time.Duration, int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.cutEach
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		if mode, _, _ := p.state(); mode == Refuse {
			a.Close()
			continue
		}
		b, err := net.DialTimeout("tcp", p.target, 10*time.Second)
		if err != nil {
			a.Close()
			continue
		}
		c := &faultConn{a: a, b: b}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.close()
			return
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, a, b, p.takeFlip())
		go p.pipe(c, b, a, -1)
	}
}

// pipe copies src to dst under the proxy's current faults, flipping the
// byte at offset flip of the stream if flip >= 0, and cuts the connection
// when either side ends.
func (p *FaultProxy) pipe(c *faultConn, dst, src net.Conn, flip int64) {
	defer p.wg.Done()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 16<<10)
	var crossed int64
	for {
		n, err := src.Read(buf)
		if n > 0 {
			mode, delay, cutEach := p.state()
			if mode == Refuse {
				return
			}
			if delay > 0 {
				time.Sleep(delay)
			}
			chunk := buf[:n]
			cut := cutEach > 0 && crossed+int64(n) >= cutEach
			if cut { // forward part of the chunk, then cut: mid-message
				chunk = chunk[:max(0, cutEach-crossed-1)]
			}
			if mode == Pass {
				p.flipIn(chunk, flip-crossed)
				if _, werr := dst.Write(chunk); werr != nil {
					return
				}
			}
			if cut {
				p.mu.Lock()
				p.cut++
				p.mu.Unlock()
				return
			}
			crossed += int64(n)
		}
		if err != nil {
			return // EOF or a cut: either way the connection ends
		}
	}
}

// flipIn flips the byte at i of chunk, if it holds one there, and counts
// it.
func (p *FaultProxy) flipIn(chunk []byte, i int64) {
	if i < 0 || i >= int64(len(chunk)) {
		return
	}
	chunk[i] ^= 0xff
	p.mu.Lock()
	p.flipped++
	p.mu.Unlock()
}
