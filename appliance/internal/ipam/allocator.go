package ipam

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Allocator chooses addresses in one subnet. It is safe for concurrent use.
// See the package documentation for its rules and invariants.
type Allocator struct {
	layout // fixed by New

	mu sync.Mutex
	// unused holds the dynamic addresses that have no entry (never used,
	// as far as the allocator knows), as offsets from base.
	unused *bitset
	base   uint32
	// lru holds the entries of the dynamic addresses that have one.
	lru lru
	// entries holds every address with a lease, a hold or a place in lru.
	entries  map[uint32]*entry
	resByMAC map[string]uint32
	resByIP  map[uint32]string
	// leaseOf is each MAC's current lease: the address of an entry whose
	// lease is the MAC's and not declined.
	leaseOf map[string]uint32
	// holdOf is the address each MAC holds for a pending offer: at most
	// one per MAC.
	holdOf map[string]uint32
	// clock is the latest time any call passed in. It stands in for "now"
	// where a call has none: a release or a deletion is dated no later.
	clock time.Time
}

// New returns the allocator of subnet s, which knows the machines' fixed
// addresses (reservations, MAC to address, all inside s.Prefix) and the
// subnet's committed leases. It checks all of them and names what is wrong.
func New(s Subnet, reservations map[string]netip.Addr, leases []Lease, now time.Time) (*Allocator, error) {
	l, err := newLayout(s)
	if err != nil {
		return nil, err
	}
	now = now.Round(0)
	a := &Allocator{
		layout:   l,
		entries:  make(map[uint32]*entry, len(leases)),
		resByMAC: make(map[string]uint32, len(reservations)),
		resByIP:  make(map[uint32]string, len(reservations)),
		leaseOf:  make(map[string]uint32, len(leases)),
		holdOf:   make(map[string]uint32),
		clock:    now,
	}
	a.fillUnused()
	for _, mac := range slices.Sorted(maps.Keys(reservations)) {
		if err := a.reserve(mac, reservations[mac]); err != nil {
			return nil, fmt.Errorf("reservation of %s: %w", mac, err)
		}
	}
	seen := make(map[netip.Addr]int, len(leases))
	for i, le := range leases {
		if err := a.validLease(le); err != nil {
			return nil, fmt.Errorf("leases[%d]: %w", i, err)
		}
		if j, dup := seen[le.IP]; dup {
			return nil, invalid("leases[%d] and leases[%d] are both for %s", j, i, le.IP)
		}
		seen[le.IP] = i
		a.observe(le, false)
	}
	return a, nil
}

func (a *Allocator) fillUnused() {
	if len(a.dynamic) == 0 {
		a.unused = newBitset(0)
		return
	}
	a.base = a.dynamic[0].lo
	a.unused = newBitset(int(a.dynamic[len(a.dynamic)-1].hi-a.base) + 1)
	for _, s := range a.dynamic {
		for i := s.lo - a.base; ; i++ {
			a.unused.add(int(i))
			if i == s.hi-a.base {
				break
			}
		}
	}
}

// Choose returns the address to offer mac: its reservation; else its
// current lease, even expired, unless another MAC has the address now;
// else its pending offer; else requested (DHCP option 50; the zero Addr
// for none) if that is a free pool address; else the free pool address
// least recently used: one never used, the lowest first, then the one
// free for longest. Choose changes nothing: Offer also holds the address.
func (a *Allocator) Choose(mac string, requested netip.Addr, now time.Time) (netip.Addr, error) {
	if err := checkMAC(mac); err != nil {
		return netip.Addr{}, err
	}
	now = now.Round(0)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick(now)
	u, err := a.choose(mac, requested, now)
	if err != nil {
		return netip.Addr{}, err
	}
	return addr(u), nil
}

// Offer chooses an address for mac as Choose does and holds it for mac
// until until, in one step, so that concurrent offers never collide.
func (a *Allocator) Offer(mac string, requested netip.Addr, now, until time.Time) (netip.Addr, error) {
	if err := checkMAC(mac); err != nil {
		return netip.Addr{}, err
	}
	now, until = now.Round(0), until.Round(0)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick(now)
	u, err := a.choose(mac, requested, now)
	if err != nil {
		return netip.Addr{}, err
	}
	a.hold(mac, u, until)
	return addr(u), nil
}

func (a *Allocator) choose(mac string, requested netip.Addr, now time.Time) (uint32, error) {
	if r, ok := a.resByMAC[mac]; ok {
		if err := a.check(mac, r, now); err != nil {
			return 0, fmt.Errorf("reserved address of %s: %w", mac, err)
		}
		return r, nil
	}
	if len(a.pools) == 0 {
		return 0, fmt.Errorf("%w: %s has no reservation in %s", ErrNoPool, mac, a.prefix)
	}
	if u, ok := a.leaseOf[mac]; ok && a.check(mac, u, now) == nil {
		return u, nil
	}
	if u, ok := a.holdOf[mac]; ok && a.check(mac, u, now) == nil {
		return u, nil
	}
	if a.prefix.Contains(requested) {
		if u := u32(requested); a.check(mac, u, now) == nil {
			return u, nil
		}
	}
	if i := a.unused.min(); i >= 0 {
		return a.base + uint32(i), nil
	}
	if len(a.lru) > 0 && !a.lru[0].freeAt.After(now) {
		return a.lru[0].ip, nil
	}
	return 0, fmt.Errorf("%w: all %d dynamic addresses of %s are in use", ErrExhausted, len(a.lru), a.prefix)
}

// Hold keeps ip for mac's pending offer until until: no other MAC gets it
// before then. A MAC holds one address at a time; holding another drops
// the first. Hold fails, changing nothing, if Check would.
func (a *Allocator) Hold(mac string, ip netip.Addr, now, until time.Time) error {
	if err := checkMAC(mac); err != nil {
		return err
	}
	if !a.prefix.Contains(ip) {
		return fmt.Errorf("%w: %s is outside %s", ErrNotInPool, ip, a.prefix)
	}
	now, until = now.Round(0), until.Round(0)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick(now)
	u := u32(ip)
	if err := a.check(mac, u, now); err != nil {
		return err
	}
	a.hold(mac, u, until)
	return nil
}

func (a *Allocator) hold(mac string, u uint32, until time.Time) {
	if h, ok := a.holdOf[mac]; ok && h != u {
		a.dropHold(a.entries[h])
	}
	e := a.entry(u)
	if e.hold.mac != mac {
		a.clearHold(e) // another MAC's, lapsed: Check passed
	}
	e.hold = hold{mac, until}
	a.holdOf[mac] = u
	a.refresh(e)
}

// Check reports whether mac may have ip at now (a DHCPREQUEST): its
// reservation, or, for a MAC without one, a pool address no other MAC
// leases or holds, not quarantined. Its own lease or hold counts as free.
// The error says why not.
func (a *Allocator) Check(mac string, ip netip.Addr, now time.Time) error {
	if err := checkMAC(mac); err != nil {
		return err
	}
	if !a.prefix.Contains(ip) {
		return fmt.Errorf("%w: %s is outside %s", ErrNotInPool, ip, a.prefix)
	}
	now = now.Round(0)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick(now)
	return a.check(mac, u32(ip), now)
}

func (a *Allocator) check(mac string, u uint32, now time.Time) error {
	if r, ok := a.resByMAC[mac]; ok {
		if r != u {
			return fmt.Errorf("%w: %s has reserved address %s, not %s", ErrReserved, mac, addr(r), addr(u))
		}
	} else if other, ok := a.resByIP[u]; ok {
		return fmt.Errorf("%w: %s is reserved for %s", ErrReserved, addr(u), other)
	} else if err := a.static(u); err != nil {
		return err
	}
	if e := a.entries[u]; e != nil {
		return e.blocks(mac, now)
	}
	return nil
}

func (a *Allocator) tick(now time.Time) {
	if now.After(a.clock) {
		a.clock = now
	}
}

// Reservation returns mac's fixed address, if it has one. No other MAC
// is ever given it, so an offer of it need not be recorded anywhere.
func (a *Allocator) Reservation(mac string) (netip.Addr, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	u, ok := a.resByMAC[mac]
	if !ok {
		return netip.Addr{}, false
	}
	return addr(u), true
}

// Lease returns the lease committed for ip as the allocator last saw
// it (built from the store, then each commit observed), if there is
// one: the leader's DHCP server asks it instead of reading the store.
func (a *Allocator) Lease(ip netip.Addr) (Lease, bool) {
	if !a.prefix.Contains(ip) {
		return Lease{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.entries[u32(ip)]
	if e == nil || e.lease.state == 0 {
		return Lease{}, false
	}
	return Lease{IP: ip, MAC: e.lease.mac, State: e.lease.state, Expires: e.lease.expires}, true
}

// Holds reports whether the lease keeps its address from every other MAC
// at t: an offer or an active lease until it expires, a declined address
// until its quarantine ends (as the store's Lease.Holds).
func (l Lease) Holds(t time.Time) bool {
	return l.State != Released && l.Expires.After(t)
}
