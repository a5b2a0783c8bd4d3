package httpserve

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the servers' connection and deadline metrics, labelled by
// server name. One Metrics serves every server of a process.
type Metrics struct {
	open    *prometheus.GaugeVec
	refused *prometheus.CounterVec
	cut     *prometheus.CounterVec
}

// NewMetrics registers the servers' metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "outpost_http_connections",
			Help: "HTTP connections open, by server.",
		}, []string{"server"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_http_connections_refused_total",
			Help: "HTTP connections closed on accept because a cap was reached, by server and cap (total, source).",
		}, []string{"server", "cap"}),
		cut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "outpost_http_deadline_cuts_total",
			Help: "Requests cut by a deadline, by server and what was late (body, write).",
		}, []string{"server", "what"}),
	}
	reg.MustRegister(m.open, m.refused, m.cut)
	return m
}

// methods are the request methods metrics name; any other is "other",
// so that a client cannot make new series at will.
var methods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "CONNECT": true, "TRACE": true,
}

// MethodLabel is method as a metric label: a standard method, or
// "other".
func MethodLabel(method string) string {
	if methods[method] {
		return method
	}
	return "other"
}

// serverMetrics are one server's metrics; nil Metrics make no-ops.
type serverMetrics struct {
	open                        prometheus.Gauge
	refusedTotal, refusedSource prometheus.Counter
	cutBody, cutWrite           prometheus.Counter
}

func (m *Metrics) server(name string) serverMetrics {
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	return serverMetrics{
		open:          m.open.WithLabelValues(name),
		refusedTotal:  m.refused.WithLabelValues(name, "total"),
		refusedSource: m.refused.WithLabelValues(name, "source"),
		cutBody:       m.cut.WithLabelValues(name, "body"),
		cutWrite:      m.cut.WithLabelValues(name, "write"),
	}
}
