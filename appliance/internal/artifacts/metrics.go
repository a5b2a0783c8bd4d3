package artifacts

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outposthq/outpost/appliance/internal/store"
)

var (
	descArtifacts = prometheus.NewDesc("outpost_artifacts",
		"Artifacts the site records, by state: missing, pulling, present, unreferenced.", []string{"state"}, nil)
	descBytes = prometheus.NewDesc("outpost_artifact_bytes",
		"Bytes of whole artifacts this node's store holds.", nil, nil)
	descMissing = prometheus.NewDesc("outpost_artifacts_missing",
		"Artifacts an image points at that this node does not hold.", nil, nil)
	descFetched = prometheus.NewDesc("outpost_artifact_fetched_bytes_total",
		"Bytes of artifacts this node fetched, by source: wan (central, upstream URLs) or peer.", []string{"source"}, nil)
	descCorrupt = prometheus.NewDesc("outpost_artifact_corrupt_total",
		"Transfers of artifacts this node threw away because their bytes did not hash to their digest.", nil, nil)
)

// Collector is the node's artifact metrics, read at each scrape.
func (n *Node) Collector() prometheus.Collector { return collector{n} }

type collector struct{ n *Node }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descArtifacts, descBytes, descMissing, descFetched, descCorrupt} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	states := map[string]int{StateMissing: 0, StatePulling: 0, StatePresent: 0, StateUnreferenced: 0}
	_ = c.n.cfg.DB.View(func(tx *store.Tx) error {
		recs, err := Records(tx)
		for _, r := range recs {
			states[r.State]++
		}
		return err
	})
	for s, v := range states {
		ch <- prometheus.MustNewConstMetric(descArtifacts, prometheus.GaugeValue, float64(v), s)
	}
	whole, _ := c.n.cfg.Store.Usage()
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(whole))
	ch <- prometheus.MustNewConstMetric(descMissing, prometheus.GaugeValue, float64(len(c.n.missing())))
	st := c.n.rep.Stats()
	ch <- prometheus.MustNewConstMetric(descFetched, prometheus.CounterValue, float64(st.WANBytes), "wan")
	ch <- prometheus.MustNewConstMetric(descFetched, prometheus.CounterValue, float64(st.PeerBytes), "peer")
	ch <- prometheus.MustNewConstMetric(descCorrupt, prometheus.CounterValue, float64(st.Corrupt))
}
