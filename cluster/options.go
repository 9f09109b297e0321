package cluster

import (
	"log/slog"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
)

// Defaults of the fan-out's limits.
const (
	// DefaultTimeout bounds one request to one peer: long enough for a
	// remote read of a large selector on a loaded peer, short enough that
	// a peer that hangs costs a REST answer seconds, not minutes.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxConcurrency is how many REST requests to peers may be in
	// flight at once on one replica.
	DefaultMaxConcurrency = 16
	// DefaultMaxAnswerBytes bounds a peer's REST answer (its rows in the
	// poll log's format): the 2,000 × 64-port fabric is 10 MB of records,
	// so a peer of a fabric several times larger fits.
	DefaultMaxAnswerBytes = 256 << 20
)

// Options configures the fan-out to peers. Zero values take the defaults.
type Options struct {
	// Timeout bounds each request to a peer (remote read, label lookup,
	// rows), within the deadline of the request that fans out.
	Timeout time.Duration
	// MaxConcurrency bounds the REST requests to peers in flight at once;
	// more wait for a slot within their timeout.
	MaxConcurrency int
	// MaxAnswerBytes bounds a peer's REST answer, counted after
	// decompression. A peer's remote-read answer is bounded by the query
	// limits instead (Peers.Queryable).
	MaxAnswerBytes int64
	// HTTPClient configures the requests to peers: TLS and credentials
	// when the replicas serve with --web.config.file. HTTPConfigFile, if
	// set, is read into it by New.
	HTTPClient     config.HTTPClientConfig
	HTTPConfigFile string
	// Registerer receives the fan-out's metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// AddFlags registers the --fanout.* flags and returns the options they fill.
func AddFlags(app *kingpin.Application) *Options {
	o := &Options{}
	app.Flag("fanout.timeout", "In partitioned mode, the longest a request to another replica may take (a PromQL remote read, a label lookup, a REST request for rows), within the asking request's own deadline. A replica that does not answer in time makes the answer partial, with a warning naming it.").
		Default(DefaultTimeout.String()).DurationVar(&o.Timeout)
	app.Flag("fanout.max-concurrency", "In partitioned mode, the most REST requests to other replicas in flight at once; more wait for a slot within --fanout.timeout.").
		Default("16").IntVar(&o.MaxConcurrency)
	app.Flag("fanout.max-answer-bytes", "In partitioned mode, the largest answer another replica may give to a REST request for its rows, counted after decompression; a larger one fails that replica's part of the answer. (Remote reads for PromQL are bounded by --query.max-response-bytes.)").
		Default("256MiB").BytesVar((*units.Base2Bytes)(&o.MaxAnswerBytes))
	app.Flag("fanout.http-config-file", "In partitioned mode, a Prometheus HTTP client configuration file (TLS, basic auth, bearer token, as in a scrape config) for the requests to other replicas: needed when they serve with --web.config.file.").
		StringVar(&o.HTTPConfigFile)
	return o
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = DefaultMaxConcurrency
	}
	if o.MaxAnswerBytes <= 0 {
		o.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}
