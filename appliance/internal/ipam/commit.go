package ipam

import (
	"fmt"
	"net/netip"
	"time"
)

// This file holds what changes the allocator besides offers: committed
// leases, deleted leases and machines' reservations; and Stats.

// Observe records a lease committed to the store: new, renewed, released,
// declined or expired. Like the store, it keeps one lease per MAC: a MAC's
// lease at another address, unless declined, is forgotten. Pending offers
// end: the lease MAC's, at this address or, if the lease is offered or
// active, anywhere; and anyone's at this address unless it was released.
// A lease outside the subnet or malformed is refused.
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
	if e.hold.mac == l.MAC || l.State != Released {
		a.clearHold(e) // the commit settles the offer; or the address is another's now
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
// neither its network, broadcast nor gateway address. It replaces mac's
// previous reservation, and ends mac's pending offer of another address
// and other MACs' pending offers of ip. An address reserved for another MAC
// is refused. An address another MAC leases is not: mac gets ErrTaken from
// Choose until that lease ends, and the other MAC's renewals fail Check.
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
	if h, ok := a.holdOf[mac]; ok && h != u {
		a.dropHold(a.entries[h])
	}
	switch e := a.entries[u]; {
	case e != nil:
		if e.hold.mac != mac {
			a.clearHold(e) // an offer to another MAC: it would be refused
		}
		a.refresh(e)
	case wasDynamic:
		a.unused.remove(int(u - a.base))
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
