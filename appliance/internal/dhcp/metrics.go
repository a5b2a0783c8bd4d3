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
)

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{dropped, malformed} }
