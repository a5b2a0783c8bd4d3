package site

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/appliance/internal/ipam"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Address management. One allocator, one policy (package ipam) chooses
// every address the site gives: the DHCP server's offers and the address
// a provision order reserves for its machine. This file turns the store's
// subnets, leases and reserved addresses into an allocator.

// IPAMSubnet is sub as package ipam sees it. sub must be valid.
func IPAMSubnet(sub *store.Subnet) ipam.Subnet {
	is := ipam.Subnet{Prefix: sub.Prefix(), Lease: LeaseTime(sub)}
	if sub.Gateway != "" {
		is.Gateway = netip.MustParseAddr(sub.Gateway)
	}
	for _, r := range sub.Pools {
		is.Pools = append(is.Pools, ipam.Range{Start: netip.MustParseAddr(r.Start), End: netip.MustParseAddr(r.End)})
	}
	for _, r := range sub.Reserved {
		is.Reserved = append(is.Reserved, ipam.Range{Start: netip.MustParseAddr(r.Start), End: netip.MustParseAddr(r.End)})
	}
	return is
}

// LeaseTime is the lease time of a subnet.
func LeaseTime(sub *store.Subnet) time.Duration {
	if sub.LeaseSeconds == 0 {
		return store.DefaultLeaseSeconds * time.Second
	}
	return time.Duration(sub.LeaseSeconds) * time.Second
}

// IPAMLease is l as package ipam sees it.
func IPAMLease(l *store.Lease) ipam.Lease {
	st := ipam.Active
	switch l.State {
	case store.LeaseOffered:
		st = ipam.Offered
	case store.LeaseReleased:
		st = ipam.Released
	case store.LeaseDeclined:
		st = ipam.Declined
	}
	return ipam.Lease{IP: netip.MustParseAddr(l.IP), MAC: l.MAC, State: st, Expires: l.Expires}
}

// NewAllocator builds the allocator of subnet sub from the leases (those of
// other subnets, or outside sub's prefix, are left out) and the addresses
// machines reserve, in order. A lease or reservation that cannot be
// taken (two machines claiming one address, a machine on the gateway) is
// left out and told to skip, if not nil: it must not stop the subnet.
func NewAllocator(sub *store.Subnet, leases []*store.Lease, reserved []store.Reservation, now time.Time, skip func(what string, err error)) (*ipam.Allocator, error) {
	prefix := sub.Prefix()
	var ls []ipam.Lease
	for _, l := range leases {
		if l.Subnet != sub.Name {
			continue
		}
		if a, err := netip.ParseAddr(l.IP); err != nil || !prefix.Contains(a) {
			tell(skip, "lease "+l.IP, errors.New("outside its subnet's prefix"))
			continue
		}
		ls = append(ls, IPAMLease(l))
	}
	alloc, err := ipam.New(IPAMSubnet(sub), nil, ls, now)
	if err != nil {
		return nil, fmt.Errorf("subnet %s: %w", sub.Name, err)
	}
	for _, r := range reserved {
		if !prefix.Contains(r.IP) {
			continue
		}
		if err := alloc.SetReservation(r.MAC, r.IP); err != nil {
			tell(skip, fmt.Sprintf("machine %s's address %s for %s", r.MachineID, r.IP, r.MAC), err)
		}
	}
	return alloc, nil
}

func tell(skip func(string, error), what string, err error) {
	if skip != nil {
		skip(what, err)
	}
}

// reservation is an address chosen for a machine's boot interface.
type reservation struct {
	iface  int // index in Machine.Interfaces
	ip     string
	subnet string
}

// addressChooser chooses the address a provision order reserves for
// machine m at now, writing nothing; nil if it needs none.
type addressChooser func(tx *store.Tx, m *store.Machine, now time.Time) (*reservation, error)

// chooseBootAddress chooses, with the site's allocator, the address a
// provision order reserves for machine m's boot interface: none if the
// interface reserves one already. The subnet is the interface's, else the
// one where its MAC holds a lease, else the site's only subnet with
// pools. In it the allocator's policy decides (ipam.Allocator.Choose):
// the address the MAC leases, unless another MAC has it since, else the
// free pool address least recently used.
func chooseBootAddress(tx *store.Tx, m *store.Machine, now time.Time) (*reservation, error) {
	i, subnets, err := needsAddress(tx, m)
	if i < 0 || err != nil {
		return nil, err
	}
	iface := m.Interfaces[i]
	sub, err := bootSubnet(tx, m, i, subnets, now)
	if err != nil {
		return nil, err
	}
	leases, err := store.List[store.Lease](tx)
	if err != nil {
		return nil, err
	}
	reserved, err := tx.Reservations()
	if err != nil {
		return nil, err
	}
	alloc, err := NewAllocator(sub, leases, reserved, now, nil)
	if err != nil {
		return nil, errs.Invalid(fmt.Sprintf("interfaces[%d].subnet", i), "subnet %s cannot give addresses: %v", sub.Name, err)
	}
	ip, err := alloc.Choose(iface.MAC, netip.Addr{}, now)
	if err != nil {
		return nil, errs.Conflict("subnet %s has no free address in its pools for machine %q", sub.Name, m.ID)
	}
	return &reservation{iface: i, ip: ip.String(), subnet: sub.Name}, nil
}

// needsAddress returns the index of m's boot interface if it needs an
// address (it reserves none), and the site's subnets; -1 if it needs
// none.
func needsAddress(tx *store.Tx, m *store.Machine) (int, []*store.Subnet, error) {
	i := bootInterface(m)
	if i < 0 {
		return -1, nil, errs.Invalid("machine_id", "machine %q has no interface to give an address", m.ID)
	}
	if m.Interfaces[i].IP != "" {
		return -1, nil, nil
	}
	subnets, err := store.List[store.Subnet](tx)
	return i, subnets, err
}

// bootInterface is the index of m's boot interface: the one marked, else
// the first; -1 if it has none.
func bootInterface(m *store.Machine) int {
	i := -1
	for k, f := range m.Interfaces {
		if f.Boot || (i < 0 && k == 0) {
			i = k
		}
	}
	return i
}

// bootSubnet is the subnet a provision gives interface i of m an address
// on (see chooseBootAddress).
func bootSubnet(tx *store.Tx, m *store.Machine, i int, subnets []*store.Subnet, now time.Time) (*store.Subnet, error) {
	iface := m.Interfaces[i]
	if iface.Subnet == "" {
		if _, s, err := heldLease(tx, iface, subnets, now); s != nil || err != nil {
			return s, err
		}
	}
	return poolSubnet(m, i, subnets)
}

// heldLease is the lease iface's MAC holds at now, and its subnet, in the
// interface's subnet or, if it names none, in any.
func heldLease(tx *store.Tx, iface store.Interface, subnets []*store.Subnet, now time.Time) (*store.Lease, *store.Subnet, error) {
	for _, s := range subnets {
		if iface.Subnet != "" && s.Name != iface.Subnet {
			continue
		}
		l, err := tx.LeaseByMAC(s.Name, iface.MAC)
		if err == nil && l.Holds(now) && l.State != store.LeaseDeclined {
			return l, s, nil
		} else if err != nil && !errors.Is(err, errs.ErrNotFound) {
			return nil, nil, err
		}
	}
	return nil, nil, nil
}

// poolSubnet is the subnet interface i of m names, else the site's only
// subnet with pools.
func poolSubnet(m *store.Machine, i int, subnets []*store.Subnet) (*store.Subnet, error) {
	iface := m.Interfaces[i]
	var subnet *store.Subnet
	for _, s := range subnets {
		switch {
		case iface.Subnet != "" && s.Name == iface.Subnet:
			subnet = s
		case iface.Subnet == "" && len(s.Pools) > 0 && subnet != nil:
			return nil, errs.Invalid(fmt.Sprintf("interfaces[%d].subnet", i),
				"the site has several subnets with pools: name the one machine %q boots on", m.ID)
		case iface.Subnet == "" && len(s.Pools) > 0:
			subnet = s
		}
	}
	if subnet == nil {
		return nil, errs.Invalid(fmt.Sprintf("interfaces[%d].subnet", i), "no subnet with pools to give machine %q an address from", m.ID)
	}
	return subnet, nil
}

// reserve writes reservation r into machine id, with an event.
func reserve(tx *store.Tx, id string, r *reservation, wr store.Write) error {
	m, err := store.Get[store.Machine](tx, id)
	if err != nil {
		return err
	}
	m.Interfaces[r.iface].IP, m.Interfaces[r.iface].Subnet = r.ip, r.subnet
	if err := tx.UnsafePutMachine(m, wr); err != nil {
		return err
	}
	mac := m.Interfaces[r.iface].MAC
	return event(tx, wr, store.Event{MachineID: id, Kind: "ipam.reserved",
		Message: fmt.Sprintf("machine %s: %s reserved on %s for %s", id, r.ip, r.subnet, mac),
		Fields:  map[string]string{"ip": r.ip, "subnet": r.subnet, "mac": mac}})
}
