package dhcp

import "github.com/prometheus/client_golang/prometheus"

var (
	dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_dropped_total",
		Help: "DHCP packets dropped because every worker was busy.",
	})
	malformed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_dhcp_malformed_total",
		Help: "DHCP packets that did not parse.",
	})
)

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{dropped, malformed} }
