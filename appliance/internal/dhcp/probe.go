package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

// Conflict probes (RFC 5227, as a DHCP server's ping before an offer):
// before offering an address that no lease holds, the server asks the
// link who has it, from sender address 0.0.0.0, so that no host's ARP
// cache learns anything from the question. The probe runs in the
// offer's own goroutine, after the worker decided the packet, and waits
// at most Config.ProbeWait: a DISCOVER for such an address is answered
// that much later, and no worker waits. An address that answered no
// probe within probeFresh is not probed again. Only a subnet on the
// link of the interface the DISCOVER came in on is probed; a relayed
// subnet's clients are not on this node's link.

// probeFresh is how long an address that did not answer a probe is
// offered without another.
const probeFresh = time.Minute

// maxQuiet bounds the addresses remembered as probed; past it, the
// prober forgets them all (and probes them again).
const maxQuiet = 1 << 16

// prober sends ARP probes on one interface and hears their answers.
type prober struct {
	name string
	cli  *arp.Client
	hw   net.HardwareAddr
	log  *slog.Logger

	mu      sync.Mutex
	waiters map[netip.Addr][]chan net.HardwareAddr
	quiet   map[netip.Addr]time.Time // last probe nobody answered
}

// dialProber opens a raw ARP socket on the interface (it needs
// CAP_NET_RAW) and reads it until Close.
func dialProber(name string, log *slog.Logger) (*prober, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("dhcp: probe on %q: %w", name, err)
	}
	cli, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("dhcp: probe on %q: %w", name, err)
	}
	p := &prober{name: name, cli: cli, hw: ifi.HardwareAddr, log: log,
		waiters: map[netip.Addr][]chan net.HardwareAddr{}, quiet: map[netip.Addr]time.Time{}}
	go p.read()
	return p, nil
}

// Close stops the prober's reader.
func (p *prober) Close() error { return p.cli.Close() }

// read hands each ARP packet from a host claiming an address (its
// sender address) to whoever probes that address.
func (p *prober) read() {
	for {
		pkt, _, err := p.cli.Read()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Debug("dhcp: probe socket closed", "interface", p.name, "err", err)
			}
			return
		}
		if pkt.SenderIP.IsUnspecified() || string(pkt.SenderHardwareAddr) == string(p.hw) {
			continue // another prober's question, or our own
		}
		p.mu.Lock()
		for _, ch := range p.waiters[pkt.SenderIP] {
			select {
			case ch <- pkt.SenderHardwareAddr:
			default:
			}
		}
		p.mu.Unlock()
	}
}

// fresh reports whether ip answered no probe within probeFresh of now.
func (p *prober) fresh(ip netip.Addr, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.quiet[ip]
	return ok && now.Sub(at) < probeFresh && !now.Before(at)
}

// probe asks who has ip, twice within wait, and returns the MAC of the
// first host that claims it, or nil when none did by the end of wait.
func (p *prober) probe(ctx context.Context, ip netip.Addr, wait time.Duration, now time.Time) (net.HardwareAddr, error) {
	ch := make(chan net.HardwareAddr, 1)
	p.mu.Lock()
	p.waiters[ip] = append(p.waiters[ip], ch)
	p.mu.Unlock()
	defer p.drop(ip, ch)
	pkt, err := arp.NewPacket(arp.OperationRequest, p.hw, netip.IPv4Unspecified(), make(net.HardwareAddr, 6), ip)
	if err != nil {
		return nil, fmt.Errorf("dhcp: probe %s: %w", ip, err)
	}
	t := time.NewTimer(wait / 2)
	defer t.Stop()
	for sent := 0; ; {
		if sent < 2 {
			if err := p.cli.WriteTo(pkt, ethernet.Broadcast); err != nil {
				return nil, fmt.Errorf("dhcp: probe %s on %s: %w", ip, p.name, err)
			}
			sent++
		}
		select {
		case mac := <-ch:
			return mac, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			if sent == 2 {
				p.mu.Lock()
				if len(p.quiet) >= maxQuiet {
					clear(p.quiet)
				}
				p.quiet[ip] = now
				p.mu.Unlock()
				return nil, nil
			}
			t.Reset(wait - wait/2)
		}
	}
}

func (p *prober) drop(ip netip.Addr, ch chan net.HardwareAddr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ws := p.waiters[ip]
	for i, w := range ws {
		if w == ch {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(p.waiters, ip)
	} else {
		p.waiters[ip] = ws
	}
}
