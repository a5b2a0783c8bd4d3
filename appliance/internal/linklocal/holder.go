package linklocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// Addr is the metadata address, where cloud-init's Ec2 datasource looks.
var Addr = netip.MustParseAddr("169.254.169.254")

// DefaultLifetime is how long a held address outlives its last renewal.
const DefaultLifetime = 6 * time.Second

// announcements is how many times a new holder announces the address:
// at once and at the next renewals, past the neighbour tables' lock time
// (1 s on Linux), within which an update would be ignored.
const announcements = 3

// Links is what a Holder needs of the kernel (Kernel is the real one).
type Links interface {
	// Hold adds p to the interface, or renews it, valid for lifetime.
	Hold(ifname string, p netip.Prefix, lifetime time.Duration) error
	// Drop removes p from the interface; p not being there is no error.
	Drop(ifname string, p netip.Prefix) error
	// Announce sends a gratuitous ARP for a out of the interface.
	Announce(ifname string, a netip.Addr) error
}

// Config configures a Holder.
type Config struct {
	// Interfaces are the boot-network interfaces the address is held on
	// (those the DHCP server answers on). At least one.
	Interfaces []string
	// Leader, when set, is asked at every renewal whether the node
	// leads, so that the Holder follows leadership even if a SetLeader
	// call raced with its start.
	Leader interface{ IsReadyLeader() bool }
	// Serve serves the requests made to the address (the metadata
	// service's routes) on ln until ctx ends, as httpserve.Server's Serve
	// does, held to the limits the other servers are.
	Serve func(ctx context.Context, ln net.Listener) error
	// Port is the TCP port served on the address; 0 means 80.
	Port int
	// Lifetime is how long the address stays after its last renewal (it
	// is renewed every third of it); 0 means DefaultLifetime.
	Lifetime time.Duration
	// Links adds and removes the address; nil means Kernel.
	Links Links
	// Listen opens the listener on the address; nil means net.Listen.
	Listen func(network, address string) (net.Listener, error)
	// Log receives the address's comings and goings and any failure. Nil
	// discards.
	Log *slog.Logger
}

// Holder holds the address while the node leads. Run does the work;
// SetLeader tells it what to do.
type Holder struct {
	cfg    Config
	prefix netip.Prefix
	want   chan bool
}

// New checks cfg and returns a Holder that holds nothing yet.
func New(cfg Config) (*Holder, error) {
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("linklocal: Config.Interfaces is empty")
	}
	if cfg.Serve == nil {
		return nil, errors.New("linklocal: Config.Serve is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("linklocal: Config.Port %d is not a TCP port", cfg.Port)
	}
	if cfg.Lifetime < 0 || (cfg.Lifetime > 0 && cfg.Lifetime < 3*time.Millisecond) {
		return nil, fmt.Errorf("linklocal: Config.Lifetime %v is too short", cfg.Lifetime)
	}
	if cfg.Port == 0 {
		cfg.Port = 80
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Links == nil {
		cfg.Links = Kernel{}
	}
	if cfg.Listen == nil {
		cfg.Listen = net.Listen
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Holder{cfg: cfg, prefix: netip.PrefixFrom(Addr, 32), want: make(chan bool, 1)}, nil
}

// SetLeader tells the Holder whether the node leads. It never blocks;
// the last call wins. It suits cluster's OnLeadership.
func (h *Holder) SetLeader(lead bool) {
	for {
		select {
		case h.want <- lead:
			return
		default:
		}
		select {
		case <-h.want:
		default:
		}
	}
}

// Run holds the address whenever the node leads, until ctx ends; it then
// gives the address up and returns nil. It first removes an address left
// by an earlier run of this node.
func (h *Holder) Run(ctx context.Context) error {
	h.drop()
	tick := time.NewTicker(h.cfg.Lifetime / 3)
	defer tick.Stop()
	var held *term
	lead := false
	for {
		select {
		case <-ctx.Done():
			if held != nil {
				h.release(held)
			}
			return nil
		case lead = <-h.want:
		case <-tick.C:
			if h.cfg.Leader != nil {
				lead = h.cfg.Leader.IsReadyLeader()
			}
		}
		switch {
		case lead && held == nil:
			held = h.take()
		case lead:
			h.renew(held)
		case held != nil:
			h.release(held)
			held = nil
		}
	}
}
