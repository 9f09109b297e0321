package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
)

// Phases of an ingestion cycle, the values of the phase label.
const (
	phaseFetch = "fetch"
	phaseParse = "parse"
	phaseSwap  = "swap"
)

// ingestBuckets span a cheap poll of a few switches (milliseconds) to a slow
// source near a typical source timeout.
var ingestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// selfMetrics are the aggregator's own metrics, kept apart from the data.
type selfMetrics struct {
	duration    prometheus.Histogram
	phase       *prometheus.HistogramVec
	total       *prometheus.CounterVec
	failures    *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	up          prometheus.Gauge

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

func newSelfMetrics(reg prometheus.Registerer) *selfMetrics {
	const ns = schema.Namespace
	m := &selfMetrics{
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "ingest", Name: "duration_seconds",
			Help:    "Duration of whole ingestion cycles (fetch, parse, swap), successful or not.",
			Buckets: ingestBuckets,
		}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "ingest", Name: "phase_duration_seconds",
			Help:    "Duration of each phase of the ingestion cycles that reached it.",
			Buckets: ingestBuckets,
		}, []string{"phase"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "ingest", Name: "total",
			Help: "Ingestion cycles by result.",
		}, []string{"result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "ingest", Name: "failures_total",
			Help: "Rejected ingestion cycles by reason; a rejected poll keeps the last good snapshot.",
		}, []string{"reason"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "ingest", Name: "last_success_timestamp_seconds",
			Help: "When the last successful ingestion cycle ended, in seconds since the epoch; 0 before the first.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "source", Name: "up",
			Help: "1 if the last poll of the source succeeded, 0 if it failed or none has succeeded yet. Data series are cached from the last successful poll either way.",
		}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by handler, status code and method.",
		}, []string{"handler", "code", "method"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time to serve HTTP requests, by handler and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"handler", "method"}),
	}
	// Every label value from the start, so that rate() and alerts see a 0
	// rather than a missing series before the first event.
	for _, p := range []string{phaseFetch, phaseParse, phaseSwap} {
		m.phase.WithLabelValues(p)
	}
	for _, r := range []string{"success", "failure"} {
		m.total.WithLabelValues(r)
	}
	for _, r := range ingest.Reasons {
		m.failures.WithLabelValues(string(r))
	}
	reg.MustRegister(
		m.duration, m.phase, m.total, m.failures, m.lastSuccess, m.up,
		m.httpRequests, m.httpDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		version.NewCollector(schema.Namespace+"_aggregator"),
	)
	return m
}

// observe records one ingestion cycle. A failed cycle records the phases it
// reached: always the fetch, the parse when it ran.
func (m *selfMetrics) observe(c ingest.Cycle) {
	m.duration.Observe(c.Total.Seconds())
	m.phase.WithLabelValues(phaseFetch).Observe(c.Fetch.Seconds())
	if c.Err != nil {
		if c.Parse > 0 {
			m.phase.WithLabelValues(phaseParse).Observe(c.Parse.Seconds())
		}
		m.total.WithLabelValues("failure").Inc()
		m.failures.WithLabelValues(string(ingest.ReasonOf(c.Err))).Inc()
		m.up.Set(0)
		return
	}
	m.phase.WithLabelValues(phaseParse).Observe(c.Parse.Seconds())
	m.phase.WithLabelValues(phaseSwap).Observe(c.Swap.Seconds())
	m.total.WithLabelValues("success").Inc()
	m.lastSuccess.Set(float64(c.Start.Add(c.Total).UnixNano()) / 1e9)
	m.up.Set(1)
}
