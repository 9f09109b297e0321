// Package exporter serves the aggregator's snapshots to Prometheus: every
// value of the current snapshot as a metric on /metrics, next to the
// aggregator's own metrics (ingestion, HTTP, Go runtime, process, build).
//
// The data part of /metrics is rendered from the immutable snapshot once per
// format and served as bytes to every scrape (see BENCHMARKS.md for why), the
// way kube-state-metrics serves millions of series. Collector is the same data
// as a prometheus.Collector; a test holds the two equal. The self-metrics live
// in their own registry and are gathered per scrape: they are small.
package exporter

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Options configure an Exporter.
type Options struct {
	// MaxRequestsInFlight caps concurrent /metrics requests; more get a 503.
	// 0 means no limit.
	MaxRequestsInFlight int
	// Timeout is the write deadline of a /metrics response, so a stalled
	// client cannot hold a slot forever. 0 means none.
	Timeout time.Duration
	// Logger receives errors that did not stop a scrape; nil discards them.
	Logger *slog.Logger
}

// AddFlags defines the exporter's flags on app and returns the Options they
// fill in when the app parses its arguments.
func AddFlags(app *kingpin.Application) *Options {
	o := &Options{}
	app.Flag("web.max-requests", "Maximum number of parallel /metrics requests; 0 means no limit.").
		Default("40").IntVar(&o.MaxRequestsInFlight)
	app.Flag("web.metrics-timeout", "Deadline for writing one /metrics response; 0 means none.").
		Default("30s").DurationVar(&o.Timeout)
	return o
}

// Exporter serves a snapshot store on /metrics and records the aggregator's
// own metrics.
type Exporter struct {
	self     *prometheus.Registry
	metrics  *selfMetrics
	cache    expositionCache
	inflight chan struct{} // nil without a limit
	timeout  time.Duration
	logger   *slog.Logger
}

// New returns an exporter of store's snapshots.
func New(store *snapshot.Store, opts Options) *Exporter {
	e := &Exporter{
		self:    prometheus.NewRegistry(),
		timeout: opts.Timeout,
		logger:  opts.Logger,
	}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRequestsInFlight > 0 {
		e.inflight = make(chan struct{}, opts.MaxRequestsInFlight)
	}
	e.metrics = newSelfMetrics(e.self)
	e.cache = expositionCache{store: store, onRender: e.logSkipped}
	return e
}

// Registry is the registry of the self-metrics, for other parts of the
// aggregator to add theirs; it is served on /metrics too.
func (e *Exporter) Registry() *prometheus.Registry { return e.self }

// Observe records one ingestion cycle; it is the poller's Observe hook.
func (e *Exporter) Observe(c ingest.Cycle) { e.metrics.observe(c) }

// Instrument counts and times the requests of h as handlerName in
// fabric_http_requests_total and fabric_http_request_duration_seconds.
func (e *Exporter) Instrument(handlerName string, h http.Handler) http.Handler {
	l := prometheus.Labels{"handler": handlerName}
	return promhttp.InstrumentHandlerDuration(e.metrics.httpDuration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(e.metrics.httpRequests.MustCurryWith(l), h))
}

// Handler serves GET /metrics. It is not instrumented; wrap it with
// Instrument like every other route.
func (e *Exporter) Handler() http.Handler { return http.HandlerFunc(e.serveMetrics) }

// offeredFormats are what /metrics can render, in order of preference when
// the client likes several equally. Protobuf is not offered: every client
// that asks for it (Prometheus with native histograms) also accepts text,
// and protobuf would need the slow Gather path.
var offeredFormats = []expfmt.Format{expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtText}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (e *Exporter) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if e.inflight != nil {
		select {
		case e.inflight <- struct{}{}:
			defer func() { <-e.inflight }()
		default:
			http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", cap(e.inflight)),
				http.StatusServiceUnavailable)
			return
		}
	}
	if e.timeout > 0 {
		// A write deadline rather than http.TimeoutHandler, which would
		// buffer the whole body: the handler itself never blocks on anything
		// but the client.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(e.timeout))
	}
	format := expfmt.NegotiateAccept(r.Header, offeredFormats...)
	enc := encText
	if format.FormatType() == expfmt.TypeOpenMetrics {
		enc = encOpenMetrics
	}

	// Data first (pre-rendered), then the self-metrics, then the end marker.
	tail := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(tail)
	tail.Reset()
	e.writeSelf(tail, format)
	if enc == encOpenMetrics {
		tail.WriteString("# EOF\n")
	}
	x := e.cache.get()

	w.Header().Set("Content-Type", string(format))
	var err error
	if acceptsGzip(r.Header) {
		w.Header().Set("Content-Encoding", "gzip")
		part := gzipPart{prefix: gzipHeader}
		if x != nil {
			part = x.gzipped(enc)
		}
		err = writeGzip(w, part, tail.Bytes())
	} else {
		var data []byte
		if x != nil {
			data = x.body(enc)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)+tail.Len()))
		err = writeAll(w, data, tail.Bytes())
	}
	if err != nil {
		e.logger.Debug("Writing /metrics response failed", "err", err, "remote", r.RemoteAddr)
	}
}

func writeAll(w io.Writer, parts ...[]byte) error {
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// writeSelf encodes the self-metrics. Errors are logged and skipped: a bad
// self-metric must not cost the scrape its data.
func (e *Exporter) writeSelf(w io.Writer, format expfmt.Format) {
	mfs, err := e.self.Gather()
	if err != nil {
		e.logger.Error("Gathering self-metrics failed; serving what was gathered", "err", err)
	}
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			e.logger.Error("Encoding a self-metric failed", "metric", mf.GetName(), "err", err)
		}
	}
}

func (e *Exporter) logSkipped(openMetrics bool, skipped int) {
	if skipped > 0 {
		e.logger.Warn("Series left out of /metrics: label values are not valid UTF-8",
			"series", skipped, "openmetrics", openMetrics)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q, ok := strings.CutPrefix(strings.TrimSpace(params), "q=")
			if !ok {
				return true
			}
			f, err := strconv.ParseFloat(q, 64)
			return err == nil && f > 0
		}
	}
	return false
}
