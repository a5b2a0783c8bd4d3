package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Offers survive a change of leader because each is committed, as a lease
// in state offered until the end of its hold, before it is sent (see the
// package doc). The commit shares the node's group commit with the
// REQUESTs' and runs off the workers, like theirs.

// offerLease returns the lease that records r's offer of ip at now, or
// nil when none is needed: ip is the client's reservation (no other MAC
// is ever given it) or the store already holds it for the client until
// at least the offer's end (a client that rebooted, or retransmits its
// DISCOVER).
func (s *Server) offerLease(r *request, ip netip.Addr, now time.Time) *store.Lease {
	if res, ok := r.pool.alloc.Reservation(r.mac); ok && res == ip {
		return nil
	}
	until := now.Add(s.cfg.OfferHold)
	var cur *store.Lease
	_ = s.db.View(func(tx *store.Tx) error {
		cur, _ = store.Get[store.Lease](tx, ip.String())
		return nil
	})
	if cur != nil && cur.MAC == r.mac && cur.Holds(until) && cur.State != store.LeaseDeclined {
		return nil
	}
	l := &store.Lease{IP: ip.String(), MAC: r.mac, Subnet: r.pool.subnet.Name, State: store.LeaseOffered,
		Starts: now.UTC(), Expires: until.UTC()}
	if r.machine != nil {
		l.MachineID = r.machine.ID
	}
	return l
}

// commitOffer commits an offer's lease and returns the OFFER once it
// landed, or nil (silence: the client retransmits) when it did not: the
// site refused the address (this node's allocator was out of step: it
// is rebuilt) or the commit's outcome is not known.
func (s *Server) commitOffer(ctx context.Context, r *request, offer *dhcpv4.DHCPv4, l *store.Lease) *dhcpv4.DHCPv4 {
	if _, err := s.cfg.Leases.CommitLease(ctx, l); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			s.invalidate()
		}
		r.log.Warn("dhcp: offer not committed", "ip", l.IP, "err", err)
		offersLost.Inc()
		return nil
	}
	offersCommitted.Inc()
	return offer
}
