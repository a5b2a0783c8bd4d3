package ipam

import (
	"container/heap"
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

// entry is what the allocator knows about one address.
type entry struct {
	ip    uint32
	lease lease // the committed lease; state 0 if none
	hold  hold  // the pending offer; mac "" if none
	// used is when the address was last in use, as far as known.
	used time.Time
	idx  int // position in lru; -1 if the address is not dynamic
}

// freeAt is when the address is free for everyone, whoever holds it: the
// entry's lru key.
func (e *entry) freeAt() time.Time {
	if e.hold.until.After(e.used) {
		return e.hold.until
	}
	return e.used
}

type lease struct {
	mac     string
	state   LeaseState
	expires time.Time
}

type hold struct {
	mac   string
	until time.Time
}

func (e *entry) empty() bool { return e.lease.state == 0 && e.hold.mac == "" }

// blocks says why mac may not have the entry's address at now, or nil.
func (e *entry) blocks(mac string, now time.Time) error {
	ip, l := addr(e.ip), e.lease
	switch {
	case l.state == Declined && l.expires.After(now):
		return fmt.Errorf("%w: %s was declined by %s; quarantined until %s",
			ErrQuarantined, ip, l.mac, l.expires.Format(time.RFC3339))
	case (l.state == Active || l.state == Offered) && l.mac != mac && l.expires.After(now):
		return fmt.Errorf("%w: %s is leased to %s (%s) until %s",
			ErrTaken, ip, l.mac, l.state, l.expires.Format(time.RFC3339))
	case e.hold.mac != "" && e.hold.mac != mac && e.hold.until.After(now):
		return fmt.Errorf("%w: %s is offered to %s until %s",
			ErrTaken, ip, e.hold.mac, e.hold.until.Format(time.RFC3339))
	}
	return nil
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

// Observe records a lease committed to the store: new, renewed, released,
// declined or expired. Like the store, it keeps one lease per MAC: a MAC's
// lease at another address, unless declined, is forgotten. A hold of the
// lease's MAC at its address, or anywhere if the lease is offered or
// active, ends. A lease outside the subnet or malformed is refused.
func (a *Allocator) Observe(l Lease) error {
	if err := a.validLease(l); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.observe(l, true)
	return nil
}

func (a *Allocator) validLease(l Lease) error {
	if !a.prefix.Contains(l.IP) {
		return fmt.Errorf("%w: lease for %s is outside %s", ErrNotInPool, l.IP, a.prefix)
	}
	if err := checkMAC(l.MAC); err != nil {
		return fmt.Errorf("lease for %s: %w", l.IP, err)
	}
	if l.State < Offered || l.State > Declined {
		return invalid("lease for %s: unknown state %v", l.IP, l.State)
	}
	return nil
}

// observe records l. With replace (a commit), the MAC's other lease goes
// as the store dropped it; without (New), the lease expiring last is the
// MAC's current one.
func (a *Allocator) observe(l Lease, replace bool) {
	u := u32(l.IP)
	l.Expires = l.Expires.Round(0)
	if cur, ok := a.leaseOf[l.MAC]; ok && cur != u && replace && l.State != Declined {
		a.forget(cur)
	}
	e := a.entry(u)
	if p := e.lease; p.state != 0 && (p.mac != l.MAC || l.State == Declined) {
		if cur, ok := a.leaseOf[p.mac]; ok && cur == u {
			delete(a.leaseOf, p.mac)
		}
	}
	e.lease = lease{l.MAC, l.State, l.Expires}
	e.used = l.Expires
	if l.State == Released && e.used.After(a.clock) {
		e.used = a.clock
	}
	if l.State != Declined {
		if cur, ok := a.leaseOf[l.MAC]; !ok || cur == u || !a.entries[cur].lease.expires.After(l.Expires) {
			a.leaseOf[l.MAC] = u
		}
	}
	if e.hold.mac == l.MAC {
		a.clearHold(e)
	}
	if h, ok := a.holdOf[l.MAC]; ok && h != u && (l.State == Active || l.State == Offered) {
		a.dropHold(a.entries[h])
	}
	a.refresh(e)
}

// Forget records that the lease of ip was deleted: the address is free.
func (a *Allocator) Forget(ip netip.Addr) {
	if !a.prefix.Contains(ip) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.forget(u32(ip))
}

func (a *Allocator) forget(u uint32) {
	e := a.entries[u]
	if e == nil || e.lease.state == 0 {
		return
	}
	if cur, ok := a.leaseOf[e.lease.mac]; ok && cur == u {
		delete(a.leaseOf, e.lease.mac)
	}
	e.lease = lease{}
	if e.used.After(a.clock) {
		e.used = a.clock
	}
	a.refresh(e)
}

// SetReservation gives mac the fixed address ip, inside the prefix and
// neither its network, broadcast nor gateway address; it replaces mac's
// previous reservation and drops its hold elsewhere. An address reserved
// for another MAC is refused. An address another MAC leases is not: mac
// gets ErrTaken from Choose until that lease ends.
func (a *Allocator) SetReservation(mac string, ip netip.Addr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reserve(mac, ip)
}

func (a *Allocator) reserve(mac string, ip netip.Addr) error {
	if err := checkMAC(mac); err != nil {
		return err
	}
	if err := a.host("address", ip); err != nil {
		return err
	}
	u := u32(ip)
	if a.hasGateway && u == a.gateway {
		return invalid("address %s is the gateway", ip)
	}
	if other, ok := a.resByIP[u]; ok && other != mac {
		return fmt.Errorf("%w: %s is already reserved for %s", ErrReserved, ip, other)
	}
	if old, ok := a.resByMAC[mac]; ok {
		if old == u {
			return nil
		}
		a.unreserve(mac)
	}
	wasDynamic := a.isDynamic(u)
	a.resByMAC[mac], a.resByIP[u] = u, mac
	if wasDynamic {
		if e := a.entries[u]; e != nil {
			a.refresh(e)
		} else {
			a.unused.remove(int(u - a.base))
		}
	}
	if h, ok := a.holdOf[mac]; ok && h != u {
		a.dropHold(a.entries[h])
	}
	return nil
}

// RemoveReservation drops mac's fixed address, if it has one; a pool
// address among them becomes dynamic again.
func (a *Allocator) RemoveReservation(mac string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.resByMAC[mac]; ok {
		a.unreserve(mac)
	}
}

func (a *Allocator) unreserve(mac string) {
	u := a.resByMAC[mac]
	delete(a.resByMAC, mac)
	delete(a.resByIP, u)
	if !a.isDynamic(u) {
		return
	}
	if e := a.entries[u]; e != nil {
		a.refresh(e)
	} else {
		a.unused.add(int(u - a.base))
	}
}

// Stats counts the dynamic addresses at now. It visits every used
// address: call it for metrics and the console, not per packet.
func (a *Allocator) Stats(now time.Time) Stats {
	now = now.Round(0)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tick(now)
	s := Stats{Size: a.unused.n + len(a.lru), Reservations: len(a.resByMAC)}
	for _, it := range a.lru {
		e := it.e
		l := e.lease
		switch {
		case l.state == Declined && l.expires.After(now):
			s.Declined++
		case (l.state == Active || l.state == Offered) && l.expires.After(now):
			s.Leased++
		case e.hold.mac != "" && e.hold.until.After(now):
			s.Held++
		}
	}
	s.Free = s.Size - s.Leased - s.Held - s.Declined
	return s
}

func (a *Allocator) tick(now time.Time) {
	if now.After(a.clock) {
		a.clock = now
	}
}

// isDynamic reports whether u may be handed out from the pools.
func (a *Allocator) isDynamic(u uint32) bool {
	_, reserved := a.resByIP[u]
	return !reserved && contains(a.dynamic, u)
}

// entry returns u's entry, making one if needed. The caller refreshes it.
func (a *Allocator) entry(u uint32) *entry {
	if e := a.entries[u]; e != nil {
		return e
	}
	e := &entry{ip: u, idx: -1}
	a.entries[u] = e
	if a.isDynamic(u) {
		a.unused.remove(int(u - a.base))
	}
	return e
}

// refresh puts e where it belongs after a change: its lru position, in or
// out of lru, and out of entries when it is not dynamic and empty.
func (a *Allocator) refresh(e *entry) {
	switch {
	case !a.isDynamic(e.ip):
		if e.idx >= 0 {
			heap.Remove(&a.lru, e.idx)
		}
		if e.empty() {
			delete(a.entries, e.ip)
		}
	case e.idx >= 0:
		a.lru[e.idx].freeAt = e.freeAt()
		heap.Fix(&a.lru, e.idx)
	default:
		heap.Push(&a.lru, item{e.freeAt(), e.ip, e})
	}
}

// clearHold ends e's hold; the caller refreshes e. A hold counts as use
// until it ended, or until now if it ends early.
func (a *Allocator) clearHold(e *entry) {
	if e.hold.mac == "" {
		return
	}
	if cur, ok := a.holdOf[e.hold.mac]; ok && cur == e.ip {
		delete(a.holdOf, e.hold.mac)
	}
	until := e.hold.until
	if until.After(a.clock) {
		until = a.clock
	}
	if until.After(e.used) {
		e.used = until
	}
	e.hold = hold{}
}

func (a *Allocator) dropHold(e *entry) {
	a.clearHold(e)
	a.refresh(e)
}
