package queryapi

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/schema"
)

// The limits a query can be refused by, the values of the limit label.
const (
	limitSamples       = "samples"        // --query.max-samples
	limitSeries        = "series"         // --query.max-series
	limitResponseBytes = "response_bytes" // --query.max-response-bytes
	limitTimeout       = "timeout"        // --query.timeout or the timeout parameter, while evaluating
	limitQueue         = "queue"          // the timeout, while waiting for a --query.max-concurrency slot
)

// metrics are the query service's own metrics.
type metrics struct {
	refused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: schema.Namespace, Subsystem: "query", Name: "refused_total",
			Help: "PromQL queries refused by a limit: samples (--query.max-samples), series (--query.max-series), " +
				"response_bytes (--query.max-response-bytes), timeout (--query.timeout or the timeout parameter, while evaluating), " +
				"queue (the same timeout, while waiting for one of the --query.max-concurrency slots).",
		}, []string{"limit"}),
	}
	// Every limit's series exists from the start, so increase() sees the
	// first refusal.
	for _, l := range []string{limitSamples, limitSeries, limitResponseBytes, limitTimeout, limitQueue} {
		m.refused.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.refused)
	}
	return m
}
