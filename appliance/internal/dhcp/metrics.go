package dhcp

import "github.com/prometheus/client_golang/prometheus"

var (
	dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_dropped_total",
		Help: "DHCP packets dropped because the workers' queue was full or every lease commit allowed (Config.Commits) was in flight.",
	})
	malformed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_malformed_total",
		Help: "DHCP packets that did not parse.",
	})
	offersCommitted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_offers_committed_total",
		Help: "Offers whose lease (state offered, until the end of the offer's hold) was committed before the OFFER was sent.",
	})
	probes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_probes_total",
		Help: "ARP probes of addresses about to be offered.",
	})
	conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_probe_conflicts_total",
		Help: "ARP probes a host answered: the address was quarantined and another chosen.",
	})
	offersLost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_offers_not_committed_total",
		Help: "DISCOVERs left unanswered because their offer's lease was refused or its commit's outcome was not known.",
	})
)

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{dropped, malformed, offersCommitted, offersLost, probes, conflicts}
}
