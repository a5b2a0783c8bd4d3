package ipam

import (
	"fmt"
	"time"
)

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
			a.lru.remove(e.idx)
		}
		if e.empty() {
			delete(a.entries, e.ip)
		}
	case e.idx >= 0:
		a.lru[e.idx].freeAt = e.freeAt()
		a.lru.fix(e.idx)
	default:
		a.lru.push(item{e.freeAt(), e.ip, e})
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
