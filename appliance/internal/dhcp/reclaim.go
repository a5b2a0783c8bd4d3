package dhcp

import (
	"context"
	"time"

	"github.com/outposthq/outpost/appliance/internal/store"
)

// reclaimInterval is how often the leader looks for leases to reclaim.
const reclaimInterval = time.Minute

// reclaim deletes, on the leader, leases that ended (expired, released or
// out of quarantine) more than ReclaimAfter ago, so the lease table holds
// what is current plus a day of history. Until then an ended lease keeps
// its address sticky for its client.
func (s *Server) reclaim(ctx context.Context) {
	t := time.NewTicker(reclaimInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.cfg.Leader.IsReadyLeader() {
			s.reclaimOnce(ctx)
		}
	}
}

func (s *Server) reclaimOnce(ctx context.Context) int {
	// As of before a recent forward step of the clock (Config.Monotonic):
	// a step of more than ReclaimAfter must not reclaim live leases.
	now := s.steps.JudgeAt(s.now(), s.cfg.ReclaimAfter)
	cutoff := now.Add(-s.cfg.ReclaimAfter)
	var old []*store.Lease
	_ = s.db.View(func(tx *store.Tx) error {
		all, err := store.List[store.Lease](tx)
		for _, l := range all {
			if !l.Holds(now) && l.Expires.Before(cutoff) {
				old = append(old, l)
			}
		}
		return err
	})
	n := 0
	for _, l := range old {
		// Expect the version read: a lease renewed meanwhile is kept.
		if err := s.cfg.Leases.ReclaimLease(ctx, l.IP, l.Version); err != nil {
			s.log.Debug("dhcp: reclaim", "ip", l.IP, "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		s.log.Info("dhcp: reclaimed ended leases", "count", n)
	}
	return n
}
