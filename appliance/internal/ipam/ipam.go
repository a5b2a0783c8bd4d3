package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Errors. Every error this package returns wraps one of them, with detail
// naming the address and the MAC involved.
var (
	// ErrExhausted: no dynamic address is free.
	ErrExhausted = errors.New("ipam: pool exhausted")
	// ErrNoPool: the MAC has no reservation and the subnet has no pool.
	ErrNoPool = errors.New("ipam: subnet has no pool")
	// ErrTaken: another MAC leases or holds the address.
	ErrTaken = errors.New("ipam: address taken")
	// ErrQuarantined: the address was declined and its quarantine has not
	// ended.
	ErrQuarantined = errors.New("ipam: address quarantined")
	// ErrReserved: the address is never handed out dynamically (network,
	// broadcast, gateway, a reserved range, another MAC's reservation), or
	// the MAC has a reservation and asked for another address.
	ErrReserved = errors.New("ipam: address reserved")
	// ErrNotInPool: the address is outside the subnet or its pools.
	ErrNotInPool = errors.New("ipam: address not in pool")
	// ErrInvalid: a subnet, reservation, lease or MAC that is malformed.
	ErrInvalid = errors.New("ipam: invalid")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Range is an inclusive range of IPv4 addresses.
type Range struct{ Start, End netip.Addr }

func (r Range) String() string { return r.Start.String() + "-" + r.End.String() }

// Subnet is one IPv4 network the allocator hands addresses out on.
type Subnet struct {
	// Prefix is the network, at most a /30. Host bits are ignored. Its
	// network and broadcast addresses are never allocated.
	Prefix netip.Prefix
	// Gateway, if set, is never allocated.
	Gateway netip.Addr
	// Pools are the ranges dynamic addresses come from. They may overlap
	// each other and may cover the network, broadcast and gateway
	// addresses, reserved ranges and reservations: those are left out.
	// Together they may span at most MaxPoolSpan addresses.
	Pools []Range
	// Reserved ranges are never allocated dynamically. Machines' fixed
	// addresses usually live here.
	Reserved []Range
	// Lease is how long the DHCP server grants a lease. It must be
	// positive; the allocator itself works from each lease's Expires.
	Lease time.Duration
}

// MaxPoolSpan is the most addresses a subnet's pools may span, from the
// lowest pool address to the highest: a /8.
const MaxPoolSpan = 1 << 24

// LeaseState is the state of a committed lease.
type LeaseState int

// Lease states, as the store keeps them.
const (
	// Offered: an offer committed to the store; the address is the
	// client's until Expires.
	Offered LeaseState = iota + 1
	// Active: the address is the client's until Expires.
	Active
	// Released: the client gave the address back; it is free at once.
	// Expires should be the time of release: it orders reuse.
	Released
	// Declined: a client reported the address in use by someone else; it
	// is quarantined, for every MAC, until Expires.
	Declined
)

var stateNames = [...]string{Offered: "offered", Active: "active", Released: "released", Declined: "declined"}

func (s LeaseState) String() string {
	if s >= Offered && s <= Declined {
		return stateNames[s]
	}
	return fmt.Sprintf("LeaseState(%d)", int(s))
}

// Lease is a committed lease, as the store keeps it.
type Lease struct {
	IP netip.Addr
	// MAC is the client's hardware address in canonical form:
	// lowercase, colon-separated ("02:00:00:00:00:0a").
	MAC     string
	State   LeaseState
	Expires time.Time
}

// Stats counts a subnet's dynamic addresses at one time. Size is Free +
// Leased + Held + Declined: each address counts once, in the first of
// Declined, Leased, Held and Free that applies.
type Stats struct {
	// Size is the number of dynamic addresses: the pools less the network,
	// broadcast and gateway addresses, the reserved ranges and the
	// reservations.
	Size int
	// Free addresses can be given to a new client now.
	Free int
	// Leased addresses have an unexpired active or offered lease.
	Leased int
	// Held addresses are held for a pending offer.
	Held int
	// Declined addresses are in quarantine.
	Declined int
	// Reservations is the number of MACs with a fixed address.
	Reservations int
}

// validMAC reports whether mac is in canonical form.
func validMAC(mac string) bool {
	if len(mac) != 17 {
		return false
	}
	for i := range len(mac) {
		c := mac[i]
		if i%3 == 2 {
			if c != ':' {
				return false
			}
		} else if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func checkMAC(mac string) error {
	if !validMAC(mac) {
		return invalid("MAC %q is not in canonical form (02:00:00:00:00:0a)", mac)
	}
	return nil
}
