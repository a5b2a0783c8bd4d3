package ipam

import (
	"fmt"
	"net/netip"
)

// layout is a validated subnet: everything about it that does not change
// while the allocator lives.
type layout struct {
	prefix     netip.Prefix
	network    uint32
	broadcast  uint32
	gateway    uint32
	hasGateway bool
	pools      []span // merged
	reserved   []span // merged Reserved ranges
	// dynamic is pools less network, broadcast, gateway and reserved; the
	// allocator also leaves out reservations, which change.
	dynamic []span
}

func newLayout(s Subnet) (layout, error) {
	var l layout
	if !s.Prefix.IsValid() || !s.Prefix.Addr().Is4() {
		return l, invalid("prefix %s is not an IPv4 prefix", s.Prefix)
	}
	if s.Prefix.Bits() > 30 {
		return l, invalid("prefix %s leaves no room for hosts", s.Prefix)
	}
	l.prefix = s.Prefix.Masked()
	l.network = u32(l.prefix.Addr())
	l.broadcast = l.network | (1<<(32-l.prefix.Bits()) - 1)
	if s.Lease <= 0 {
		return l, invalid("lease time %v is not positive", s.Lease)
	}
	if s.Gateway.IsValid() {
		if err := l.host("gateway", s.Gateway); err != nil {
			return l, err
		}
		l.gateway, l.hasGateway = u32(s.Gateway), true
	}
	var err error
	if l.pools, err = l.spans("pools", s.Pools); err != nil {
		return l, err
	}
	if l.reserved, err = l.spans("reserved", s.Reserved); err != nil {
		return l, err
	}
	if n := len(l.pools); n > 0 {
		if w := (span{l.pools[0].lo, l.pools[n-1].hi}).size(); w > MaxPoolSpan {
			return l, invalid("pools span %d addresses, from %s to %s; at most %d are supported",
				w, addr(l.pools[0].lo), addr(l.pools[n-1].hi), MaxPoolSpan)
		}
	}
	excl := append([]span{{l.network, l.network}, {l.broadcast, l.broadcast}}, l.reserved...)
	if l.hasGateway {
		excl = append(excl, span{l.gateway, l.gateway})
	}
	l.dynamic = subtract(l.pools, merge(excl))
	return l, nil
}

func (l *layout) spans(field string, rs []Range) ([]span, error) {
	ss := make([]span, 0, len(rs))
	for i, r := range rs {
		for _, a := range []netip.Addr{r.Start, r.End} {
			if !l.prefix.Contains(a) {
				return nil, invalid("%s[%d] %s: %s is outside %s", field, i, r, a, l.prefix)
			}
		}
		if r.End.Less(r.Start) {
			return nil, invalid("%s[%d] %s: end is before start", field, i, r)
		}
		ss = append(ss, span{u32(r.Start), u32(r.End)})
	}
	return merge(ss), nil
}

// host checks that a is an address in the prefix that a host may have.
func (l *layout) host(what string, a netip.Addr) error {
	if !l.prefix.Contains(a) {
		return invalid("%s %s is outside %s", what, a, l.prefix)
	}
	switch u32(a) {
	case l.network:
		return invalid("%s %s is the network address of %s", what, a, l.prefix)
	case l.broadcast:
		return invalid("%s %s is the broadcast address of %s", what, a, l.prefix)
	}
	return nil
}

// static reports why u is never a dynamic address, or nil if it is one
// as far as the subnet's definition goes.
func (l *layout) static(u uint32) error {
	ip := addr(u)
	switch {
	case u == l.network:
		return fmt.Errorf("%w: %s is the network address", ErrReserved, ip)
	case u == l.broadcast:
		return fmt.Errorf("%w: %s is the broadcast address", ErrReserved, ip)
	case l.hasGateway && u == l.gateway:
		return fmt.Errorf("%w: %s is the gateway", ErrReserved, ip)
	case contains(l.reserved, u):
		return fmt.Errorf("%w: %s is in a reserved range", ErrReserved, ip)
	case !contains(l.pools, u):
		return fmt.Errorf("%w: %s is not in a pool of %s", ErrNotInPool, ip, l.prefix)
	}
	return nil
}
