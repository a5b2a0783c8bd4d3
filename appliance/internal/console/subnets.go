package console

import (
	"math/big"
	"net/http"
	"net/netip"

	"github.com/outposthq/outpost/appliance/internal/store"
)

type subnetsData struct {
	Subnets      []subnetView
	Leases       []*store.Lease
	Quarantined  []*store.Lease
	Reservations []store.Reservation
}

type subnetView struct {
	*store.Subnet
	Pools []poolView
}

// poolView is a pool and how much of it is leased.
type poolView struct {
	store.Range
	Size, Leased int
	Percent      int
}

// subnets serves the subnets and leases page.
func (s *Server) subnets(w http.ResponseWriter, r *http.Request) {
	var d subnetsData
	err := s.cfg.Store.View(func(tx *store.Tx) error {
		subnets, err := store.List[store.Subnet](tx)
		if err != nil {
			return err
		}
		if d.Leases, err = store.List[store.Lease](tx); err != nil {
			return err
		}
		for _, l := range d.Leases {
			if l.State == store.LeaseDeclined {
				d.Quarantined = append(d.Quarantined, l)
			}
		}
		for _, sn := range subnets {
			d.Subnets = append(d.Subnets, subnetView{Subnet: sn, Pools: pools(sn, d.Leases)})
		}
		d.Reservations, err = tx.Reservations()
		return err
	})
	if err != nil {
		s.failErr(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "subnets", "Subnets and leases", d)
}

// pools counts the leases offered or active in each pool of sn.
func pools(sn *store.Subnet, leases []*store.Lease) []poolView {
	var out []poolView
	for _, p := range sn.Pools {
		start, err1 := netip.ParseAddr(p.Start)
		end, err2 := netip.ParseAddr(p.End)
		if err1 != nil || err2 != nil {
			continue
		}
		v := poolView{Range: p, Size: rangeSize(start, end)}
		for _, l := range leases {
			a, err := netip.ParseAddr(l.IP)
			if err == nil && l.Subnet == sn.Name && (l.State == store.LeaseActive || l.State == store.LeaseOffered) &&
				a.Compare(start) >= 0 && a.Compare(end) <= 0 {
				v.Leased++
			}
		}
		if v.Size > 0 {
			v.Percent = v.Leased * 100 / v.Size
		}
		out = append(out, v)
	}
	return out
}

// rangeSize is the number of addresses from start to end, inclusive.
func rangeSize(start, end netip.Addr) int {
	a, b := new(big.Int).SetBytes(start.AsSlice()), new(big.Int).SetBytes(end.AsSlice())
	n := new(big.Int).Sub(b, a)
	if n.Sign() < 0 || !n.IsInt64() {
		return 0
	}
	return int(n.Int64()) + 1
}
