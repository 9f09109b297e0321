// Package exporter serves the aggregator's view to Prometheus: every value
// of every snapshot part of the current view (the switch-level part and the
// per-port part) as a metric on /metrics, next to the aggregator's own
// metrics (ingestion per source, HTTP, Go runtime, process, build).
//
// The data part of /metrics is rendered from each immutable snapshot part
// once per format and served as bytes to every scrape (see BENCHMARKS.md for
// why), the way kube-state-metrics serves millions of series; a part that
// the next view keeps is not rendered again. The view-level gauges
// (fabric_snapshot_*) are exported once per view: the newest part's time,
// the distinct switches of all parts, the series of all parts. Collector is
// the same data as a prometheus.Collector; tests hold the two equal.
//
// The self-metrics live in their own registry and are gathered per scrape:
// they are small. Those of ingestion carry the label source, the name of
// the poller's source (ingest.Cycle.Source). Call AddSource for every
// configured source before polling starts, so that each source's series
// exist, at zero, from start-up: fabric_source_up is 0 until its first
// successful poll and every failure reason can be increase()d from zero. A
// cycle of a source not added is recorded all the same, and the source is
// added then.
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
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/history"
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

// Exporter serves a store's views on /metrics and records the aggregator's
// own metrics.
type Exporter struct {
	self     *prometheus.Registry
	views    *prometheus.Registry // the view-level gauges, for SelfGatherer
	metrics  *selfMetrics
	cache    expositionCache
	inflight chan struct{} // nil without a limit
	timeout  time.Duration
	logger   *slog.Logger

	histories *historyCollector // the sources' PromQL histories
}

// New returns an exporter of store's views.
func New(store snapshot.Loader, opts Options) *Exporter {
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
	e.histories = newHistoryCollector()
	e.self.MustRegister(e.histories)
	e.views = prometheus.NewRegistry()
	e.views.MustRegister(viewGaugeCollector{store})
	e.cache = expositionCache{store: store, onRender: e.logSkipped, onDropped: e.logDropped}
	return e
}

// Registry is the registry of the self-metrics, for other parts of the
// aggregator to add theirs; it is served on /metrics too.
func (e *Exporter) Registry() *prometheus.Registry { return e.self }

// SelfGatherer gathers what /metrics serves besides the switch data: the
// self-metrics and the view-level gauges (fabric_snapshot_*), which the
// history does not hold, for the query API to record (package selfscrape).
func (e *Exporter) SelfGatherer() prometheus.Gatherer {
	return prometheus.Gatherers{e.self, e.views}
}

// AddSource creates the ingestion self-metrics of a source, at zero and
// with fabric_source_up 0, so that they exist before its first poll. Call it
// for every configured source before polling starts; calling it again for
// the same name does nothing.
func (e *Exporter) AddSource(name string) { e.metrics.addSource(name) }

// AddHistory exports a source's PromQL history on /metrics as of each
// scrape (fabric_history_*): what it holds, and what it dropped by reason,
// every reason at zero from start-up. Call it once per source, before
// serving; a source with several histories (a partitioned replica's, one
// per partition) is exported as their sum.
func (e *Exporter) AddHistory(source string, h *history.History) {
	e.histories.add(source, h)
}

// RemoveHistory stops exporting a history of a source that has several
// (a partitioned replica's, one per partition it holds, added as it takes
// partitions and removed as it gives them up); what it dropped stays in
// the source's counts.
func (e *Exporter) RemoveHistory(source string, h *history.History) {
	e.histories.remove(source, h)
}

// Observe records one ingestion cycle under its source's name (adding the
// source if AddSource was not called for it); it is the pollers' Observe
// hook and may be called from several pollers at once.
func (e *Exporter) Observe(c ingest.Cycle) { e.metrics.observe(c) }

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
		err = writeGzip(w, x, enc, tail.Bytes())
	} else {
		size := tail.Len()
		if x != nil {
			size += x.size(enc)
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		if x != nil {
			err = x.writeBody(w, enc)
		}
		if err == nil {
			_, err = w.Write(tail.Bytes())
		}
	}
	if err != nil {
		e.logger.Debug("Writing /metrics response failed", "err", err, "remote", r.RemoteAddr)
	}
}

// writeGzip writes one gzip stream: the data part of x (nil for none),
// compressed once per segment, then tail, compressed now.
func writeGzip(w io.Writer, x *exposition, enc encoding, tail []byte) error {
	if _, err := w.Write(gzipHeader); err != nil {
		return err
	}
	var (
		crc  uint32
		size int
	)
	if x != nil {
		var err error
		if crc, size, err = x.writeDeflated(w, enc); err != nil {
			return err
		}
	}
	return writeGzipTail(w, crc, size, tail)
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

func (e *Exporter) logDropped(names []string) {
	if len(names) > 0 {
		e.logger.Warn("Metric families of the per-port part left out of /metrics: the switch-level part exports the same names (schema file?)",
			"metrics", strings.Join(names, ","))
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
