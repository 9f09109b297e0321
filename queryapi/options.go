package queryapi

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/history"
)

// Defaults, as Prometheus has them where Prometheus has the limit. The
// limits on one query's memory (samples, series, response bytes) are sized
// for the 2,000 × 64-port fabric (128,000 series per port metric): they admit
// one metric over every port, instant or over an hour at a one-minute step,
// and refuse that metric over five minutes at a one-second step (38.4 million
// samples, 1.17 GB of JSON). docs/query-api.md ("Memory budget") has the
// figures.
const (
	DefaultTimeout          = 2 * time.Minute
	DefaultMaxSamples       = 20_000_000
	DefaultMaxSeries        = 500_000
	DefaultMaxResponseBytes = 512 << 20
	DefaultMaxQueryLength   = 16 << 10
	DefaultLookbackDelta    = 5 * time.Minute

	// subqueryStep is the step of a subquery written without one (x[1h:]),
	// Prometheus's default evaluation interval.
	subqueryStep = time.Minute
	// maxPoints is the most points per series a range query may ask for,
	// as in Prometheus.
	maxPoints = 11000
)

// Options configures the query service. Zero values take the defaults, since
// the engine fails every query with a zero timeout or sample limit.
type Options struct {
	Retention        time.Duration // how far back the history goes
	Timeout          time.Duration // longest a query may run, queueing included
	MaxSamples       int           // most samples a query may hold in memory at once
	MaxSeries        int           // most series a query's selectors may load
	MaxResponseBytes int64         // largest encoded answer (JSON, before compression)
	// MaxConcurrency is how many queries are evaluated at once; more wait for
	// a slot. Zero derives it from MemoryLimit (see ConcurrencyFor).
	MaxConcurrency int
	// MemoryLimit is the memory limit the concurrency is derived from; zero
	// reads the Go runtime's (GOMEMLIMIT, set by main from the machine).
	MemoryLimit    int64
	MaxQueryLength int           // longest PromQL text accepted, in bytes
	LookbackDelta  time.Duration // how far back an instant selector looks
	Logger         *slog.Logger
	// Registerer receives the query service's metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer

	// MaxHistorySeries is the series budget of each source's history
	// (history.History.WithMaxSeries); 0 is no limit, and withDefaults
	// leaves it so. The aggregator gives it to the histories.
	MaxHistorySeries int

	// The aggregator's own metrics, kept as a Prometheus scrape of the
	// aggregator would keep them (package selfscrape): how often they are
	// gathered (0: never) and the job and instance labels they get.
	SelfMetricsInterval time.Duration
	SelfMetricsJob      string
	SelfMetricsInstance string

	// Set by the program rather than by flags:
	// SelfMetrics, if set, is queried with the histories: the store that
	// the SelfMetrics* settings fill.
	SelfMetrics storage.Queryable
	// Flags are the binary's flags and values for /api/v1/status/flags
	// (FlagValues); nil lists the query settings alone.
	Flags map[string]string
	// Peers, if set, makes the API answer for the whole fabric of a
	// partitioned aggregator: queries read this replica's data and every
	// peer's by remote read, and /api/v1/read serves this replica's own
	// data to them (fanout.go). Nil: this replica's data alone, and no
	// /api/v1/read.
	Peers *cluster.Peers
}

// Defaults of the self-metrics settings. The interval and job are those of
// the aggregator's scrape in prometheus.yml, so that a dashboard reads the
// same series from the aggregator as from Prometheus.
const (
	DefaultSelfMetricsInterval = 10 * time.Second
	DefaultSelfMetricsJob      = "fabric-aggregator"
)

// AddFlags registers the --query.* flags and returns the options they fill.
func AddFlags(app *kingpin.Application) *Options {
	o := &Options{}
	app.Flag("query.retention", "How long snapshots are kept for PromQL queries.").
		Default(history.DefaultRetention.String()).DurationVar(&o.Retention)
	app.Flag("query.max-history-series", "Most series each source's PromQL history may hold, counted per distinct set of rows and columns. Over it, the oldest snapshots are dropped first; a snapshot with more series alone is served by REST and /metrics but not kept for PromQL. Counted in fabric_history_dropped_snapshots_total{reason=\"series_budget\"}. 0 means no limit.").
		Default(strconv.Itoa(history.DefaultMaxSeries)).IntVar(&o.MaxHistorySeries)
	app.Flag("query.timeout", "Maximum time a query may take before it is aborted, time waiting for a slot included.").
		Default(DefaultTimeout.String()).DurationVar(&o.Timeout)
	app.Flag("query.max-samples", "Maximum number of samples a single query can load into memory. A query over it fails with an execution error (422).").
		Default("20000000").IntVar(&o.MaxSamples)
	app.Flag("query.max-series", "Maximum number of series the selectors of a single query may load (summed over its selectors). A query over it fails with a cost_limit error (422).").
		Default("500000").IntVar(&o.MaxSeries)
	app.Flag("query.max-response-bytes", "Largest JSON answer of a single query, counted before compression. A query whose answer would be larger fails with an execution error (422), and the answer is never held in memory beyond this size.").
		Default("512MiB").BytesVar((*units.Base2Bytes)(&o.MaxResponseBytes))
	app.Flag("query.max-concurrency", "Maximum number of queries evaluated at once; others wait for a slot until their timeout. 0 derives it from the Go memory limit: as many queries at their limits as fit in half of it, between 1 and 20.").
		Default("0").IntVar(&o.MaxConcurrency)
	app.Flag("query.max-length", "Longest PromQL expression accepted, in bytes.").
		Default("16384").IntVar(&o.MaxQueryLength)
	app.Flag("query.lookback-delta", "How far back an instant vector selector looks for a sample.").
		Default(DefaultLookbackDelta.String()).DurationVar(&o.LookbackDelta)

	// The self-metrics in the query API.
	app.Flag("query.self-metrics-interval", "How often the aggregator's own metrics (those of /metrics that are not switch data) are recorded for PromQL, as a Prometheus scrape of the aggregator would record them; 0 leaves them out of the query API.").
		Default(DefaultSelfMetricsInterval.String()).DurationVar(&o.SelfMetricsInterval)
	app.Flag("query.self-metrics-job", "The job label of the self-metrics in the query API: the aggregator's scrape job in Prometheus.").
		Default(DefaultSelfMetricsJob).StringVar(&o.SelfMetricsJob)
	app.Flag("query.self-metrics-instance", "The instance label of the self-metrics in the query API: the address Prometheus scrapes the aggregator at (empty: the host and port of --web.external-url when it is set, else this host's name and the port of the first --web.listen-address). Partitioned replicas must each have their own.").
		StringVar(&o.SelfMetricsInstance)
	return o
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = history.DefaultRetention
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = DefaultMaxSamples
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = goMemoryLimit()
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = ConcurrencyFor(o.MemoryLimit, o.QueryMemory())
	}
	if o.MaxQueryLength <= 0 {
		o.MaxQueryLength = DefaultMaxQueryLength
	}
	if o.LookbackDelta <= 0 {
		o.LookbackDelta = DefaultLookbackDelta
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
