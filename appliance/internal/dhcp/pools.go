package dhcp

import (
	"log/slog"
	"net/netip"
	"sort"
	"time"

	"github.com/outposthq/outpost/appliance/internal/ipam"
	"github.com/outposthq/outpost/appliance/internal/site"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// pool is one served subnet and its allocator.
type pool struct {
	subnet *store.Subnet
	prefix netip.Prefix
	lease  time.Duration
	alloc  *ipam.Allocator
}

// poolSet is every served subnet, built from one read of the store. It is
// replaced, not changed, when the store's IPAM state moves; its allocators
// are updated in place by this node's own lease commits.
type poolSet struct {
	epoch uint64 // leader epoch it was built in
	gen   uint64 // store IPAM generation it was built from
	pools []*pool
}

// find returns the pool whose prefix contains a, preferring the longest.
func (ps *poolSet) find(a netip.Addr) *pool {
	for _, p := range ps.pools { // sorted longest prefix first
		if p.prefix.Contains(a) {
			return p
		}
	}
	return nil
}

func (ps *poolSet) byName(name string) *pool {
	for _, p := range ps.pools {
		if p.subnet.Name == name {
			return p
		}
	}
	return nil
}

// current returns the pool set, rebuilding it if this node has become
// leader again since it was built or the store's IPAM generation (gen, as
// the caller just read it) moved.
func (s *Server) current(gen uint64) (*poolSet, error) {
	epoch := s.cfg.Leader.LeaderEpoch()
	if ps := s.pools.Load(); ps != nil && ps.epoch == epoch && ps.gen == gen {
		return ps, nil
	}
	s.rebuildMu.Lock()
	defer s.rebuildMu.Unlock()
	if ps := s.pools.Load(); ps != nil && ps.epoch == epoch && ps.gen == gen {
		return ps, nil
	}
	ps, err := s.build(epoch)
	if err != nil {
		return nil, err
	}
	s.pools.Store(ps)
	s.log.Debug("address pools rebuilt", "subnets", len(ps.pools), "ipam_gen", ps.gen, "epoch", epoch)
	return ps, nil
}

// invalidate forces a rebuild at the next packet (after a surprise from the
// store, such as a lease conflict).
func (s *Server) invalidate() { s.pools.Store(nil) }

func (s *Server) build(epoch uint64) (*poolSet, error) {
	ps := &poolSet{epoch: epoch}
	now := s.now()
	err := s.db.View(func(tx *store.Tx) error {
		ps.gen = tx.IPAMGeneration()
		subnets, err := store.List[store.Subnet](tx)
		if err != nil {
			return err
		}
		reserved, err := tx.Reservations()
		if err != nil {
			return err
		}
		leases, err := store.List[store.Lease](tx)
		if err != nil {
			return err
		}
		for _, sub := range subnets {
			p, err := newPool(sub, reserved, leases, now, s.log)
			if err != nil {
				s.log.Error("subnet not served", "subnet", sub.Name, "err", err)
				continue
			}
			ps.pools = append(ps.pools, p)
		}
		return nil
	})
	sort.Slice(ps.pools, func(i, j int) bool { return ps.pools[i].prefix.Bits() > ps.pools[j].prefix.Bits() })
	return ps, err
}

// newPool builds a subnet's allocator with the site's policy
// (site.NewAllocator). A bad reservation (two machines claiming one
// address, a machine on the gateway's address) or a stale lease outside
// the prefix is logged and left out: it must not stop the whole subnet.
func newPool(sub *store.Subnet, reserved []store.Reservation, leases []*store.Lease, now time.Time, log *slog.Logger) (*pool, error) {
	alloc, err := site.NewAllocator(sub, leases, reserved, now, func(what string, err error) {
		log.Error("left out of the subnet's allocator", "subnet", sub.Name, "what", what, "err", err)
	})
	if err != nil {
		return nil, err
	}
	return &pool{subnet: sub, prefix: sub.Prefix(), lease: site.LeaseTime(sub), alloc: alloc}, nil
}
