package app

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/appliance/internal/cluster"
	"github.com/outposthq/outpost/appliance/internal/store"
)

// Subnets an earlier release stored under looser rules (site's
// PutSubnetV1 and PutSubnetV2) may be ones the DHCP server cannot serve:
// it leaves them out and goes on serving the others. The node reports
// them: a warning each time it becomes the ready leader (the node that
// serves DHCP), naming each subnet and the rule it breaks, and the
// outpost_subnets_unservable gauge. Putting the subnet again within the
// limits, or deleting it, clears them.

// unservableSubnets returns the stored subnets the site's DHCP server
// cannot serve, with the reason of each.
func unservableSubnets(db *store.DB) (map[string]error, error) {
	out := map[string]error{}
	err := db.View(func(tx *store.Tx) error {
		subnets, err := store.List[store.Subnet](tx)
		for _, s := range subnets {
			if err := s.Validate(); err != nil {
				out[s.Name] = err
			} else if err := s.CheckServable(); err != nil {
				out[s.Name] = err
			}
		}
		return err
	})
	return out, err
}

// reportUnservable logs each stored subnet the DHCP server cannot serve.
func reportUnservable(db *store.DB, log *slog.Logger) {
	bad, err := unservableSubnets(db)
	if err != nil {
		log.Warn("check the stored subnets", "err", err)
		return
	}
	for name, why := range bad {
		log.Warn("subnet stored by an earlier release is not served: put it again within the limits, or delete it",
			"subnet", name, "err", why)
	}
}

// watchSubnets reports the unservable subnets each time node becomes the
// ready leader, and returns the gauge that counts them.
func watchSubnets(node *cluster.Node, log *slog.Logger) prometheus.Collector {
	node.OnLeadership(func(ready bool) {
		if ready {
			// Not in the caller's goroutine: the other observers of
			// leadership are not held up by a read of the store.
			go reportUnservable(node.DB(), log)
		}
	})
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "outpost_subnets_unservable",
		Help: "Stored subnets the DHCP server cannot serve (stored by an earlier release under looser rules).",
	}, func() float64 {
		bad, _ := unservableSubnets(node.DB())
		return float64(len(bad))
	})
}
