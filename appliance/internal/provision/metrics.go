package provision

import "github.com/prometheus/client_golang/prometheus"

// Why the agent API refused a request: the values of refused's reason
// label, a fixed set.
const (
	reasonCredential  = "credential"   // missing, malformed, forged, or of a workflow that is gone (401)
	reasonOutdated    = "outdated"     // a discovery credential of an earlier release (401)
	reasonExpired     = "expired"      // a discovery credential past its expiry (401)
	reasonSuperseded  = "superseded"   // a workflow credential of its machine's earlier workflow (401)
	reasonAddress     = "address"      // a valid credential from an address it is not bound to (403)
	reasonRateLimited = "rate_limited" // discovery creating machines too fast in one subnet (429)
	reasonTrace       = "trace"        // spans of another trace than the credential's workflow's (403)
)

var refused = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "outpost_agent_refused_total",
	Help: "Agent API requests refused, by reason: credential, outdated, expired, superseded (401), " +
		"address (a valid credential from another address than its machine's, 403), rate_limited (429), " +
		"trace (spans of another trace than the credential's workflow's, 403).",
}, []string{"reason"})

func init() {
	for _, r := range []string{reasonCredential, reasonOutdated, reasonExpired, reasonSuperseded, reasonAddress, reasonRateLimited, reasonTrace} {
		refused.WithLabelValues(r)
	}
}

// Collectors returns the package's metrics, for registration.
func Collectors() []prometheus.Collector { return []prometheus.Collector{refused} }
