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
	resent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "outpost_tftp_resent_total",
		Help: "TFTP packets (DATA blocks and OACKs) sent again after a timeout or an ACK of an earlier block.",
	})
)

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{transfers, busy, resent} }
