package artifacts

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the node's artifact metrics.
type metrics struct {
	corrupt prometheus.Counter
	sent    *prometheus.CounterVec
}

func newMetrics(n *Node, reg prometheus.Registerer) *metrics {
	m := &metrics{
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outpost_central_artifact_corrupt_total",
			Help: "Transfers of artifacts to this central node thrown away because their bytes did not hash to their digest.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_central_artifact_sent_bytes_total",
			Help: "Bytes of artifacts this central node sent to each site.",
		}, []string{"site"}),
	}
	reg.MustRegister(m.corrupt, m.sent, &stateCollector{n: n})
	return m
}

var (
	artifactsDesc = prometheus.NewDesc("outpost_central_artifacts",
		"Artifacts of central's catalogue by their state on this node: present (held), fetching (a transfer under way), missing.",
		[]string{"state"}, nil)
	bytesDesc = prometheus.NewDesc("outpost_central_artifact_bytes",
		"Bytes of the whole artifacts this central node holds.", nil, nil)
)

// stateCollector reads the catalogue and this node's store at each
// scrape.
type stateCollector struct{ n *Node }

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- artifactsDesc
	ch <- bytesDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	whole, _ := c.n.store.Usage()
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(whole))
	recs, err := c.n.db.Artifacts()
	if err != nil {
		return
	}
	counts := map[string]float64{StatePresent: 0, StateFetching: 0, StateMissing: 0}
	cur, busy := c.n.Transfer()
	for _, a := range recs {
		switch _, held := c.n.store.Stat(a.Digest); {
		case held:
			counts[StatePresent]++
		case busy && cur.Digest == a.Digest:
			counts[StateFetching]++
		default:
			counts[StateMissing]++
		}
	}
	for state, v := range counts {
		ch <- prometheus.MustNewConstMetric(artifactsDesc, prometheus.GaugeValue, v, state)
	}
}

// States of an artifact, on one node (metrics) or at central (the API:
// present when a node holds it, fetching while none does but the leader
// fetches it from its URL, missing when none does and none can).
const (
	StatePresent  = "present"
	StateFetching = "fetching"
	StateMissing  = "missing"
)
