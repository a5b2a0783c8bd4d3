package provision

import "github.com/prometheus/client_golang/prometheus"

var badCredentials = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "outpost_agent_bad_credentials_total",
	Help: "Agent API requests refused for a missing or wrong credential.",
})

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{badCredentials} }
