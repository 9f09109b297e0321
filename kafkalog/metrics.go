package kafkalog

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
)

const subsystem = "polllog"

// Reasons a publisher drops a poll, the values of polls_dropped_total's label.
const (
	// DropBufferFull: Kafka was unreachable (or slow) for longer than the
	// buffer holds; the oldest poll goes.
	DropBufferFull = "buffer_full"
	// DropUnencodable: the poll cannot be written (a row over the record size).
	DropUnencodable = "unencodable"
	// DropStale: a poll not newer than the one the source's log already
	// has, found when this publisher took over.
	DropStale = "stale"
)

var dropReasons = []string{DropBufferFull, DropUnencodable, DropStale}

// publisherMetrics are a Publisher's, one series per source.
type publisherMetrics struct {
	records   *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	polls     *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	aborted   *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	active    *prometheus.GaugeVec
	buffered  *prometheus.GaugeVec
	takeovers *prometheus.CounterVec
}

func newPublisherMetrics(reg prometheus.Registerer) *publisherMetrics {
	const ns = schema.Namespace
	src := []string{"source"}
	return &publisherMetrics{
		records: counterVec(reg, "records_written_total",
			"Records of committed polls written to the poll log, markers included.",
			src),
		bytes: counterVec(reg, "bytes_written_total",
			"Key and value bytes of committed polls written to the poll log, before Kafka's compression.",
			src),
		polls: counterVec(reg, "polls_written_total",
			"Polls committed to the poll log.",
			src),
		duration: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: subsystem, Name: "publish_duration_seconds",
			Help:    "Time from a poll's Publish call to its transaction's commit, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, src)),
		aborted: counterVec(reg, "transactions_aborted_total",
			"Poll transactions that failed and were aborted; the poll is retried.",
			src),
		dropped: counterVec(reg, "polls_dropped_total",
			"Accepted polls never written to the poll log, by reason: buffer_full (Kafka unreachable longer than the buffer holds; oldest first), unencodable, stale.",
			[]string{"source", "reason"}),
		active: gaugeVec(reg, "publisher_active",
			"1 while this publisher holds the source's lease and writes its polls, 0 while it stands by.",
			src),
		buffered: gaugeVec(reg, "buffered_polls",
			"Polls waiting to be written to the poll log.",
			src),
		takeovers: counterVec(reg, "lease_acquired_total",
			"Times this publisher took the source's lease and became active.",
			src),
	}
}

// addSource creates a source's series at zero.
func (m *publisherMetrics) addSource(source string) {
	m.records.WithLabelValues(source)
	m.bytes.WithLabelValues(source)
	m.polls.WithLabelValues(source)
	m.duration.WithLabelValues(source)
	m.aborted.WithLabelValues(source)
	for _, r := range dropReasons {
		m.dropped.WithLabelValues(source, r)
	}
	m.active.WithLabelValues(source)
	m.buffered.WithLabelValues(source)
	m.takeovers.WithLabelValues(source)
}

// followerMetrics are a Follower's; source is the follower's name.
type followerMetrics struct {
	records  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	polls    *prometheus.CounterVec
	rejected *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	behind   *prometheus.GaugeVec
	ready    *prometheus.GaugeVec
}

func newFollowerMetrics(reg prometheus.Registerer) *followerMetrics {
	src := []string{"source"}
	return &followerMetrics{
		records: counterVec(reg, "records_read_total",
			"Committed records read from the poll log.",
			src),
		bytes: counterVec(reg, "bytes_read_total",
			"Value bytes of the records read from the poll log, after Kafka's decompression.",
			src),
		polls: counterVec(reg, "polls_read_total",
			"Complete polls read from the poll log and applied.",
			src),
		rejected: counterVec(reg, "rejected_total",
			"Records (unknown_version, corrupt) and polls (incomplete, partial_start, duplicate, out_of_order) of the poll log rejected; the last good poll stays.",
			[]string{"source", "reason"}),
		lag: gaugeVec(reg, "consumer_lag_records",
			"Offsets between this reader's position and the partition's last stable offset.",
			[]string{"source", "partition"}),
		behind: gaugeVec(reg, "behind_seconds",
			"0 when every partition is read to its end; else how long ago the newest applied poll was published (or the reader started, before the first).",
			src),
		ready: gaugeVec(reg, "follower_ready",
			"1 once every partition was read up to the end it had when the reader started.",
			src),
	}
}

func (m *followerMetrics) addSource(source string) {
	m.records.WithLabelValues(source)
	m.bytes.WithLabelValues(source)
	m.polls.WithLabelValues(source)
	for _, r := range polllog.Reasons {
		m.rejected.WithLabelValues(source, string(r))
	}
	m.behind.WithLabelValues(source)
	m.ready.WithLabelValues(source)
}

// counterVec and gaugeVec make and register a family of the poll log's.
func counterVec(reg prometheus.Registerer, name, help string, labels []string) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: schema.Namespace, Subsystem: subsystem, Name: name, Help: help,
	}, labels))
}

func gaugeVec(reg prometheus.Registerer, name, help string, labels []string) *prometheus.GaugeVec {
	return register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: schema.Namespace, Subsystem: subsystem, Name: name, Help: help,
	}, labels))
}

// register registers c, or returns the collector already registered in its
// place, so that several publishers (one per source) share one family.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
