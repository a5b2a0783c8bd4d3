package httpboot

import "github.com/prometheus/client_golang/prometheus"

// The kinds of credential a script may carry: the values of withheld's
// kind label.
const (
	kindWorkflow  = "workflow"
	kindDiscovery = "discovery"
)

var withheld = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "outpost_httpboot_credential_withheld_total",
	Help: "iPXE scripts served without the credential they would carry, because the address that asked " +
		"is not the machine's (see package provision), by kind of credential: workflow, discovery.",
}, []string{"kind"})

var proxied = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "outpost_httpboot_artifact_proxied_total",
	Help: "Artifacts this node served from a peer of the site, not holding them yet.",
})

func init() {
	withheld.WithLabelValues(kindWorkflow)
	withheld.WithLabelValues(kindDiscovery)
}

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{withheld, proxied} }
