package store

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/outposthq/outpost/internal/errs"
)

// addressReservation is an address chosen for a machine's boot interface.
type addressReservation struct {
	iface  int // index in Machine.Interfaces
	ip     string
	subnet string
}

// chooseBootAddress chooses the address a provision order reserves for
// machine m's boot interface, writing nothing: none if the interface
// reserves one already; the address its MAC holds a lease for, so that a
// machine keeps what it has; else the lowest free address of a pool of
// the interface's subnet (or of the site's only subnet with pools). Free
// means no machine reserves it, nobody else holds a lease on it, and no
// reserved range holds it.
func (tx *Tx) chooseBootAddress(m *Machine, now time.Time) (*addressReservation, error) {
	i := -1
	for k, f := range m.Interfaces {
		if f.Boot || (i < 0 && k == 0) {
			i = k
		}
	}
	if i < 0 {
		return nil, errs.Invalid("machine_id", "machine %q has no interface to give an address", m.ID)
	}
	iface := m.Interfaces[i]
	if iface.IP != "" {
		return nil, nil
	}
	subnets, err := List[Subnet](tx)
	if err != nil {
		return nil, err
	}
	for _, s := range subnets {
		if iface.Subnet != "" && s.Name != iface.Subnet {
			continue
		}
		l, err := tx.LeaseByMAC(s.Name, iface.MAC)
		if err == nil && l.Holds(now) && l.State != LeaseDeclined {
			return &addressReservation{iface: i, ip: l.IP, subnet: s.Name}, nil
		} else if err != nil && !errors.Is(err, errs.ErrNotFound) {
			return nil, err
		}
	}
	var subnet *Subnet
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
	taken, err := tx.reservedAddresses()
	if err != nil {
		return nil, err
	}
	excluded := func(a netip.Addr) bool {
		for _, r := range subnet.Reserved {
			if inRange(a, r) {
				return true
			}
		}
		return taken[a.String()]
	}
	for _, r := range subnet.Pools {
		start, err1 := netip.ParseAddr(r.Start)
		end, err2 := netip.ParseAddr(r.End)
		if err1 != nil || err2 != nil {
			continue
		}
		for a := start; a.IsValid() && a.Compare(end) <= 0; a = a.Next() {
			if excluded(a) {
				continue
			}
			l, err := Get[Lease](tx, a.String())
			if err == nil && l.Holds(now) && l.MAC != iface.MAC {
				continue
			} else if err != nil && !errors.Is(err, errs.ErrNotFound) {
				return nil, err
			}
			return &addressReservation{iface: i, ip: a.String(), subnet: subnet.Name}, nil
		}
	}
	return nil, errs.Conflict("subnet %s has no free address in its pools for machine %q", subnet.Name, m.ID)
}

// reservedAddresses is every address a machine's interface reserves, read
// from the IP index.
func (tx *Tx) reservedAddresses() (map[string]bool, error) {
	out := map[string]bool{}
	err := tx.tx.Bucket(bucketIPIndex).ForEach(func(k, _ []byte) error {
		if ip, _, ok := bytes.Cut(k, []byte{0}); ok {
			out[string(ip)] = true
		}
		return nil
	})
	return out, err
}

func inRange(a netip.Addr, r Range) bool {
	start, err1 := netip.ParseAddr(r.Start)
	end, err2 := netip.ParseAddr(r.End)
	return err1 == nil && err2 == nil && a.Compare(start) >= 0 && a.Compare(end) <= 0
}

// applyReservation writes reservation r into machine id, with an event.
func (tx *Tx) applyReservation(id string, r *addressReservation, wr Write) error {
	m, err := Get[Machine](tx, id)
	if err != nil {
		return err
	}
	m.Interfaces[r.iface].IP, m.Interfaces[r.iface].Subnet = r.ip, r.subnet
	if err := tx.UnsafePutMachine(m, wr); err != nil {
		return err
	}
	return tx.UnsafeAppendEvent(&Event{MachineID: id, Kind: "ipam.reserved",
		Message: fmt.Sprintf("machine %s: %s reserved on %s for %s", id, r.ip, r.subnet, m.Interfaces[r.iface].MAC),
		Fields:  map[string]string{"ip": r.ip, "subnet": r.subnet, "mac": m.Interfaces[r.iface].MAC}}, wr.Index, wr.Time)
}
