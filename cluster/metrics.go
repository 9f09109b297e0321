package cluster

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/schema"
)

// The api label: what a request to a peer was for.
const (
	apiRemoteRead = "remote_read" // PromQL's remote read of /api/v1/read
	apiLabels     = "labels"      // PromQL's label names and values
	apiRows       = "rows"        // REST's rows
)

// The result label of a request to a peer.
const (
	resultSuccess  = "success"
	resultTimeout  = "timeout"   // its deadline passed: --fanout.timeout or the asking request's
	resultTooLarge = "too_large" // its answer was over its size limit
	resultError    = "error"     // anything else: refused, reset, an error status, a bad answer
)

var results = []string{resultSuccess, resultTimeout, resultTooLarge, resultError}

// metrics are the fan-out's own metrics, per peer.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: schema.Namespace, Subsystem: "fanout", Name: "requests_total",
			Help: "Requests this replica made to another replica (peer, its base URL) to answer for the whole fabric, " +
				"by what they were for (api: remote_read and labels for PromQL, rows for REST) and result " +
				"(success, timeout: --fanout.timeout or the asking request's deadline, too_large: over its size limit, error: anything else).",
		}, []string{"api", "peer", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: schema.Namespace, Subsystem: "fanout", Name: "request_duration_seconds",
			Help:    "Time of the requests to other replicas, from sending to the end of the answer, whatever their result.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"api", "peer"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// seen creates a peer's series at zero, so that increase() sees its first
// failure.
func (m *metrics) seen(api, peer string) {
	for _, r := range results {
		m.requests.WithLabelValues(api, peer, r)
	}
}

func (m *metrics) done(api, peer, result string, start time.Time) {
	m.requests.WithLabelValues(api, peer, result).Inc()
	m.duration.WithLabelValues(api, peer).Observe(time.Since(start).Seconds())
}
