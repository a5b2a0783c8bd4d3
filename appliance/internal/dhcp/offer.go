package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/outposthq/outpost/appliance/internal/ipam"
	"github.com/outposthq/outpost/appliance/internal/store"
	"github.com/outposthq/outpost/internal/errs"
)

// Offers survive a change of leader because each is committed, as a lease
// in state offered until the end of its hold, before it is sent (see the
// package doc). The commit shares the node's group commit with the
// REQUESTs' and runs off the workers, like theirs, after the address's
// conflict probe if it needs one (probe.go).

// maxProbes bounds the addresses one DISCOVER probes: past it, the
// client's retransmission starts again.
const maxProbes = 3

// pendingOffer is what is done before an OFFER is sent: its lease
// committed, and first, with probe set, the address probed.
type pendingOffer struct {
	lease *store.Lease
	probe *prober
}

// pending returns what r's offer of ip at now needs before it is sent,
// or nil when nothing: ip is the client's reservation (no other MAC is
// ever given it) or the store already holds it for the client until at
// least the offer's end (a client that rebooted, or retransmits its
// DISCOVER). An address no lease holds, not the client's, on the
// receiving interface's link, not probed lately, is probed first. What
// the store holds is the allocator's lease (the store's, as this leader
// committed it), not a read of the store.
func (s *Server) pending(r *request, ip netip.Addr, now time.Time) *pendingOffer {
	if res, ok := r.pool.alloc.Reservation(r.mac); ok && res == ip {
		return nil
	}
	until := now.Add(s.cfg.OfferHold)
	cur, held := r.pool.alloc.Lease(ip)
	if held && cur.MAC == r.mac && cur.Holds(until) && cur.State != ipam.Declined {
		return nil
	}
	l := &store.Lease{IP: ip.String(), MAC: r.mac, Subnet: r.pool.subnet.Name, State: store.LeaseOffered,
		Starts: now.UTC(), Expires: until.UTC()}
	if r.machine != nil {
		l.MachineID = r.machine.ID
	}
	o := &pendingOffer{lease: l}
	if p := s.probers[r.in.name]; p != nil && s.onLink(r) && (!held || cur.MAC != r.mac && !cur.Holds(now)) && !p.fresh(ip, now) {
		o.probe = p
	}
	return o
}

// onLink reports whether r's subnet is the receiving interface's own
// (not relayed): only there can a probe reach a host using an address.
func (s *Server) onLink(r *request) bool {
	gi := r.msg.GatewayIPAddr.To4()
	return (gi == nil || gi.IsUnspecified()) && r.pool.prefix.Contains(r.in.addr)
}

// commitOffer probes the offer's address if it must, choosing another
// when a host answers (at most maxProbes), commits the offer's lease and
// returns the OFFER once it landed; or nil (silence: the client
// retransmits) when the commit did not: the site refused the address
// (this node's allocator was out of step: it is rebuilt) or the commit's
// outcome is not known.
func (s *Server) commitOffer(ctx context.Context, r *request, offer *dhcpv4.DHCPv4, o *pendingOffer) *dhcpv4.DHCPv4 {
	for i := 0; o != nil && o.probe != nil; i++ {
		if i == maxProbes || !s.conflict(ctx, r, o) {
			break
		}
		offer, o = s.discover(r)
	}
	if o == nil {
		return offer
	}
	l := o.lease
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

// conflict probes o's address and reports whether a host answered: the
// address is then quarantined (QuarantineAddress), out of this node's
// allocator at once, and the offer must choose again. A probe that
// fails to send counts as no answer: probing never stops a subnet.
func (s *Server) conflict(ctx context.Context, r *request, o *pendingOffer) bool {
	ip := netip.MustParseAddr(o.lease.IP)
	mac, err := o.probe.probe(ctx, ip, s.cfg.ProbeWait, s.now())
	probes.Inc()
	if err != nil {
		r.log.Warn("dhcp: conflict probe", "ip", ip, "err", err)
		return false
	}
	if mac == nil || mac.String() == r.mac {
		return false // silence, or the client itself answered
	}
	conflicts.Inc()
	now := s.now()
	r.log.Warn("dhcp: address in use by a host the site does not know; quarantined", "ip", ip, "host_mac", mac.String(),
		"subnet", r.pool.subnet.Name, "for", s.cfg.ConflictQuarantine)
	if err := s.cfg.Leases.QuarantineAddress(ctx, r.pool.subnet.Name, ip.String(), mac.String(), s.cfg.ConflictQuarantine); err != nil {
		r.log.Warn("dhcp: quarantine not committed", "ip", ip, "err", err)
	}
	q := ipam.Lease{IP: ip, MAC: mac.String(), State: ipam.Declined, Expires: now.Add(s.cfg.ConflictQuarantine)}
	if err := r.pool.alloc.Observe(q); err != nil {
		r.log.Warn("dhcp: allocator out of step with the store; rebuilding", "ip", ip, "err", err)
		s.invalidate()
		return false
	}
	return true
}
