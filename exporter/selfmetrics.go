package exporter

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/collectors/version"

	"github.com/fabrictelemetry/aggregator/history"
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

// sourceLabel names the source of the ingestion self-metrics.
const sourceLabel = "source"

// selfMetrics are the aggregator's own metrics, kept apart from the data.
// The ingestion ones are per source.
type selfMetrics struct {
	duration    *prometheus.HistogramVec
	phase       *prometheus.HistogramVec
	total       *prometheus.CounterVec
	failures    *prometheus.CounterVec
	clamped     *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	up          *prometheus.GaugeVec

	mu      sync.Mutex
	sources map[string]bool // added so far

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

func newSelfMetrics(reg prometheus.Registerer) *selfMetrics {
	const ns = schema.Namespace
	m := &selfMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "ingest", Name: "duration_seconds",
			Help:    "Duration of whole ingestion cycles (fetch, parse, swap) of each source, successful or not.",
			Buckets: ingestBuckets,
		}, []string{sourceLabel}),
		phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "ingest", Name: "phase_duration_seconds",
			Help:    "Duration of each phase of the ingestion cycles that reached it, per source.",
			Buckets: ingestBuckets,
		}, []string{sourceLabel, "phase"}),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "ingest", Name: "total",
			Help: "Ingestion cycles by source and result.",
		}, []string{sourceLabel, "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "ingest", Name: "failures_total",
			Help: "Rejected ingestion cycles by source and reason; a rejected poll keeps the source's last good snapshot.",
		}, []string{sourceLabel, "reason"}),
		clamped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "ingest", Name: "clock_skew_clamped_total",
			Help: "Accepted polls whose source time was more than --source.max-clock-skew ahead of the poll and was replaced by the poll time, per source: the source's clock is wrong.",
		}, []string{sourceLabel}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "ingest", Name: "last_success_timestamp_seconds",
			Help: "When the last successful ingestion cycle of the source ended, in seconds since the epoch; 0 before the first.",
		}, []string{sourceLabel}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "source", Name: "up",
			Help: "1 if the last poll of the source succeeded, 0 if it failed or none has succeeded yet. Data series are cached from the last successful poll either way.",
		}, []string{sourceLabel}),
		sources: map[string]bool{},
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
	reg.MustRegister(
		m.duration, m.phase, m.total, m.failures, m.clamped, m.lastSuccess, m.up,
		m.httpRequests, m.httpDuration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		version.NewCollector(schema.Namespace+"_aggregator"),
	)
	return m
}

// addSource creates every series of a source, so that rate(), increase()
// and alerts see a 0 rather than a missing series before its first event.
func (m *selfMetrics) addSource(source string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sources[source] {
		return
	}
	m.sources[source] = true
	m.duration.WithLabelValues(source)
	for _, p := range []string{phaseFetch, phaseParse, phaseSwap} {
		m.phase.WithLabelValues(source, p)
	}
	for _, r := range []string{"success", "failure"} {
		m.total.WithLabelValues(source, r)
	}
	for _, r := range ingest.Reasons {
		m.failures.WithLabelValues(source, string(r))
	}
	m.clamped.WithLabelValues(source)
	m.lastSuccess.WithLabelValues(source)
	m.up.WithLabelValues(source)
}

// observe records one ingestion cycle of c.Source. A failed cycle records
// the phases it reached: always the fetch, the parse when it ran.
func (m *selfMetrics) observe(c ingest.Cycle) {
	m.addSource(c.Source)
	src := c.Source
	m.duration.WithLabelValues(src).Observe(c.Total.Seconds())
	m.phase.WithLabelValues(src, phaseFetch).Observe(c.Fetch.Seconds())
	if c.Err != nil {
		if c.Parse > 0 {
			m.phase.WithLabelValues(src, phaseParse).Observe(c.Parse.Seconds())
		}
		m.total.WithLabelValues(src, "failure").Inc()
		m.failures.WithLabelValues(src, string(ingest.ReasonOf(c.Err))).Inc()
		m.up.WithLabelValues(src).Set(0)
		return
	}
	m.phase.WithLabelValues(src, phaseParse).Observe(c.Parse.Seconds())
	m.phase.WithLabelValues(src, phaseSwap).Observe(c.Swap.Seconds())
	m.total.WithLabelValues(src, "success").Inc()
	if !c.ClampedFrom.IsZero() {
		m.clamped.WithLabelValues(src).Inc()
	}
	m.lastSuccess.WithLabelValues(src).Set(float64(c.Start.Add(c.Total).UnixNano()) / 1e9)
	m.up.WithLabelValues(src).Set(1)
}

// historyCollector exports each source's PromQL history as of the scrape:
// what it holds and what it dropped, by reason, every reason from start-up,
// and, for a history kept under --storage.path, what its Disk did. A source
// of a partitioned replica has a history per partition it holds, which come
// and go with the partitions: its series are their sums (snapshots, the
// most any holds), and its drops count those of the histories removed too,
// so that the counters never go back.
type historyCollector struct {
	dropped, series, bytes, snapshots *prometheus.Desc
	storage                           storageDescs

	mu      sync.Mutex
	sources []string                                 // in the order first added
	hs      map[string][]*history.History            // per source
	retired map[string]map[history.DropReason]uint64 // drops of the removed histories, per source
}

func newHistoryCollector() *historyCollector {
	const ns = schema.Namespace
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "history", name), help, append([]string{sourceLabel}, labels...), nil)
	}
	return &historyCollector{
		dropped: desc("dropped_snapshots_total",
			"Snapshots the source's PromQL history dropped, by reason: rewound (the source's time went back, later snapshots dropped), series_budget (oldest dropped for --query.max-history-series, or a snapshot over it alone not kept).", "reason"),
		series:    desc("series", "Series the source's PromQL history holds, counted per distinct set of rows and columns as --query.max-history-series counts them."),
		bytes:     desc("bytes", "Bytes the source's PromQL history holds: samples, plain and encoded, and an estimate of its series tables."),
		snapshots: desc("snapshots", "Snapshots the source's PromQL history holds."),
		storage: storageDescs{
			loaded:     desc("storage_snapshots_loaded", "Snapshots of the source's PromQL history loaded from --storage.path at start-up."),
			unreadable: desc("storage_files_unreadable_total", "History files under --storage.path skipped at start-up: corrupt, truncated, of an unknown format version, or a run whose layout is unreadable."),
			runs:       desc("storage_runs_written_total", "Sealed runs of the source's PromQL history written under --storage.path."),
			bytes:      desc("storage_bytes_written_total", "Bytes of history files written under --storage.path."),
			failures:   desc("storage_failures_total", "Writes and deletions of history files under --storage.path that failed (each is tried again)."),
			unwritten:  desc("storage_runs_unwritten_total", "Sealed runs of the source's PromQL history that left it before they could be written under --storage.path."),
			sealed:     desc("storage_sealed_through_timestamp_seconds", "Time of the newest snapshot of the source's PromQL history kept under --storage.path: a restart loads the history up to it. 0 when none is."),
		},
	}
}

// storageDescs describe what a history's Disk did.
type storageDescs struct {
	loaded, unreadable, runs, bytes, failures, unwritten, sealed *prometheus.Desc
}

func (d *storageDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.loaded, d.unreadable, d.runs, d.bytes, d.failures, d.unwritten, d.sealed} {
		ch <- desc
	}
}

func (d *storageDescs) collect(ch chan<- prometheus.Metric, st history.DiskStats, src string) {
	sealed := 0.0
	if !st.SealedThrough.IsZero() {
		sealed = float64(st.SealedThrough.UnixMilli()) / 1e3
	}
	ch <- prometheus.MustNewConstMetric(d.loaded, prometheus.GaugeValue, float64(st.LoadedSnapshots), src)
	ch <- prometheus.MustNewConstMetric(d.unreadable, prometheus.CounterValue, float64(st.Unreadable), src)
	ch <- prometheus.MustNewConstMetric(d.runs, prometheus.CounterValue, float64(st.RunsWritten), src)
	ch <- prometheus.MustNewConstMetric(d.bytes, prometheus.CounterValue, float64(st.BytesWritten), src)
	ch <- prometheus.MustNewConstMetric(d.failures, prometheus.CounterValue, float64(st.Failures), src)
	ch <- prometheus.MustNewConstMetric(d.unwritten, prometheus.CounterValue, float64(st.Unwritten), src)
	ch <- prometheus.MustNewConstMetric(d.sealed, prometheus.GaugeValue, sealed, src)
}

func (c *historyCollector) add(source string, h *history.History) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hs == nil {
		c.hs, c.retired = map[string][]*history.History{}, map[string]map[history.DropReason]uint64{}
	}
	if _, ok := c.hs[source]; !ok {
		c.sources = append(c.sources, source)
	}
	c.hs[source] = append(slices.Clone(c.hs[source]), h)
}

// remove stops exporting h, keeping what it dropped in the source's counts.
func (c *historyCollector) remove(source string, h *history.History) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.Index(c.hs[source], h)
	if i < 0 {
		return
	}
	c.hs[source] = slices.Delete(slices.Clone(c.hs[source]), i, i+1)
	if c.retired[source] == nil {
		c.retired[source] = map[history.DropReason]uint64{}
	}
	for _, r := range history.DropReasons {
		c.retired[source][r] += h.Dropped(r)
	}
}

func (c *historyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.dropped
	ch <- c.series
	ch <- c.bytes
	ch <- c.snapshots
	c.storage.describe(ch)
}

func (c *historyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources, hs, retired := c.sources, maps.Clone(c.hs), map[string]map[history.DropReason]uint64{}
	for src, r := range c.retired {
		retired[src] = maps.Clone(r)
	}
	c.mu.Unlock()
	for _, src := range sources {
		for _, r := range history.DropReasons {
			n := retired[src][r]
			for _, h := range hs[src] {
				n += h.Dropped(r)
			}
			ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(n), src, string(r))
		}
		var series, bytes, snapshots int
		for _, h := range hs[src] {
			v := h.Load()
			st := v.Stats()
			series += st.Series
			bytes += st.Bytes()
			snapshots = max(snapshots, v.Len())
		}
		ch <- prometheus.MustNewConstMetric(c.series, prometheus.GaugeValue, float64(series), src)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(bytes), src)
		ch <- prometheus.MustNewConstMetric(c.snapshots, prometheus.GaugeValue, float64(snapshots), src)
		// Histories under --storage.path are those of HTTP sources, one each.
		if len(hs[src]) == 1 {
			if d := hs[src][0].Disk(); d != nil {
				c.storage.collect(ch, d.Stats(), src)
			}
		}
	}
}
