package queryapi

import (
	"log/slog"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/fabrictelemetry/aggregator/history"
)

// Defaults, as Prometheus has them where Prometheus has the limit.
const (
	DefaultTimeout        = 2 * time.Minute
	DefaultMaxSamples     = 50_000_000
	DefaultMaxConcurrency = 20
	DefaultMaxQueryLength = 16 << 10
	DefaultLookbackDelta  = 5 * time.Minute

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
	Retention      time.Duration // how far back the history goes
	Timeout        time.Duration // longest a query may run, queueing included
	MaxSamples     int           // most samples a query may hold in memory at once
	MaxConcurrency int           // queries evaluated at once; more wait for a slot
	MaxQueryLength int           // longest PromQL text accepted, in bytes
	LookbackDelta  time.Duration // how far back an instant selector looks
	Logger         *slog.Logger

	// MaxHistorySeries is the series budget of each source's history
	// (history.History.WithMaxSeries); 0 is no limit, and withDefaults
	// leaves it so. The aggregator gives it to the histories.
	MaxHistorySeries int
}

// AddFlags registers the --query.* flags and returns the options they fill.
func AddFlags(app *kingpin.Application) *Options {
	o := &Options{}
	app.Flag("query.retention", "How long snapshots are kept for PromQL queries.").
		Default(history.DefaultRetention.String()).DurationVar(&o.Retention)
	app.Flag("query.max-history-series", "Most series each source's PromQL history may hold, counted per distinct set of rows and columns. Over it, the oldest snapshots are dropped first; a snapshot with more series alone is served by REST and /metrics but not kept for PromQL. Counted in fabric_history_dropped_snapshots_total{reason=\"series_budget\"}. 0 means no limit.").
		Default(strconv.Itoa(history.DefaultMaxSeries)).IntVar(&o.MaxHistorySeries)
	app.Flag("query.timeout", "Maximum time a query may take before it is aborted, time waiting for a slot included.").
		Default(DefaultTimeout.String()).DurationVar(&o.Timeout)
	app.Flag("query.max-samples", "Maximum number of samples a single query can load into memory. A query over it fails with an execution error.").
		Default("50000000").IntVar(&o.MaxSamples)
	app.Flag("query.max-concurrency", "Maximum number of queries evaluated at once; others wait for a slot until their timeout.").
		Default("20").IntVar(&o.MaxConcurrency)
	app.Flag("query.max-length", "Longest PromQL expression accepted, in bytes.").
		Default("16384").IntVar(&o.MaxQueryLength)
	app.Flag("query.lookback-delta", "How far back an instant vector selector looks for a sample.").
		Default(DefaultLookbackDelta.String()).DurationVar(&o.LookbackDelta)
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
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = DefaultMaxConcurrency
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
