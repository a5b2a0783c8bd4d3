package tftp

import "github.com/prometheus/client_golang/prometheus"

var (
	transfers = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "outpost_tftp_transfers",
		Help: "TFTP transfers under way.",
	})
	busy = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_tftp_busy_total",
		Help: "TFTP read requests refused because Config.MaxTransfers transfers were under way.",
	})
)

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{transfers, busy} }
