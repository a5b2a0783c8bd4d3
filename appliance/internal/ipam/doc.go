// Package ipam chooses IPv4 addresses for the DHCP server: pure logic, with
// no I/O, no clock (every call that needs the time is given it) and no
// dependency on the store or any other appliance package.
//
// An Allocator serves one subnet. The DHCP server builds it from the
// replicated store (the subnet, the machines' fixed addresses, the
// subnet's leases) and keeps it current:
//
//	DHCPDISCOVER        ip, err := a.Offer(mac, requested, now, now.Add(holdTime))
//	DHCPREQUEST         err := a.Check(mac, ip, now), then commit the lease
//	a lease committed   a.Observe(lease): offered, active, renewed, released, declined
//	a lease deleted     a.Forget(ip)
//	a machine changed   a.SetReservation(mac, ip) / a.RemoveReservation(mac)
//
// The store's state machine has the last word: it refuses a lease for an
// address another MAC holds. The allocator's job is to choose well and fast,
// so that such conflicts are rare, and never to choose an address it knows
// is taken.
//
// # Rules
//
// At a time now, an address is free for a MAC unless another MAC leases it
// (an active or offered lease with Expires after now) or holds it (a pending
// offer until after now), or anyone declined it (quarantine until Expires).
// A released lease frees its address at once. An expired or released lease
// still binds its address to its MAC for stickiness until someone else gets
// the address. A committed lease ends other MACs' pending offers of its
// address: the store has spoken. Times are compared by the wall clock: monotonic readings
// (from time.Now) are dropped on the way in, so the caller's times and the
// store's order alike.
//
// Choose picks, in order: the MAC's reservation, even outside the pools; its
// current lease, expired or not, unless another MAC has the address since;
// its pending offer; the requested address (DHCP option 50)
// if it is a free pool address; the free pool address least recently used:
// never-used addresses first, lowest first, then the address free for
// longest, so that a released address is not handed out again at once.
//
// # Invariants
//
//   - Choose, Offer, Hold and Check never give a MAC: the network or
//     broadcast address, the gateway, an address in a reserved range other
//     than its own reservation, another MAC's reservation, an address another
//     MAC leases or holds at now, or a quarantined address.
//   - A MAC with a reservation gets that address or an error, never another.
//   - An address is held for at most one MAC, and a MAC holds at most one
//     address: Offer is Choose and Hold under one lock, so concurrent offers
//     never hand one address to two MACs.
//   - Every dynamic address (the pools less network, broadcast, gateway,
//     reserved ranges and reservations) is in exactly one of two sets: the
//     never-used set, a bitset tree, or the least-recently-used heap, keyed
//     by freeAt: the later of the address's last use and its hold, from
//     when it is free for everyone. Hence
//     Choose, Offer, Hold, Check, Observe, Forget, SetReservation and
//     RemoveReservation cost O(log n) for n dynamic addresses; New costs
//     O(pool span + leases); Stats O(used addresses).
//   - ErrExhausted means no dynamic address is free at now, provided the
//     times passed in do not run backwards. Safety does not depend on that:
//     a time earlier than one already seen can only make the allocator more
//     cautious.
//
// The allocator is advisory and in-memory: after a restart, New rebuilds it
// from the store, and addresses whose lease was deleted count as never used.
package ipam
