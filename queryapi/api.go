package queryapi

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/schema"
)

// API serves the Prometheus HTTP API over the histories of every source.
type API struct {
	histories *history.Set
	table     *schema.Table
	opts      Options
	// queryable is what queries read: local, or local and the peers'
	// data with Options.Peers.
	queryable storage.Queryable
	local     storage.Queryable
	engine    *promql.Engine
	parser    parser.Parser
	gate      *gate
	chunks    *chunkPool
	release   *releaser
	// heavyBytes is the memory from which a query is heavy (released
	// after).
	heavyBytes int64
	metrics    *metrics
	logger     *slog.Logger
	now        func() time.Time
	started    time.Time // when New ran, the start of the service
	cwd        string
}

// New returns the API over the histories of every source (one per source,
// so that each keeps its samples' true times); queries see their union,
// and a history added to the set later is seen by the queries after it.
// table gives the metadata of known columns.
func New(histories *history.Set, table *schema.Table, opts Options) *API {
	opts = opts.withDefaults()
	if table == nil {
		table = schema.Default()
	}
	p := parser.NewParser(parser.Options{})
	g := newGate(opts.MaxConcurrency)
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:                   opts.Logger,
		MaxSamples:               opts.MaxSamples,
		Timeout:                  opts.Timeout,
		ActiveQueryTracker:       g,
		LookbackDelta:            opts.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return subqueryStep.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		// Prometheus's query cost limits (its query_max_series): the
		// engine counts the series each selector loads and stops at the
		// limit, before it has the whole set.
		EnableQueryCost: true,
		Parser:          p,
	})
	engine.SetQueryLimits(uint64(opts.MaxSeries), 0, 0)
	opts.Logger.Info("Query limits", "max_samples", opts.MaxSamples, "max_series", opts.MaxSeries,
		"max_response_bytes", opts.MaxResponseBytes, "max_concurrency", opts.MaxConcurrency,
		"memory_limit", opts.MemoryLimit, "query_memory", opts.QueryMemory())
	cwd, err := os.Getwd()
	if err != nil {
		cwd = "<error retrieving current working directory>" // as Prometheus says
	}
	local := merge(histories.Queryable(), opts.SelfMetrics)
	return &API{
		histories: histories, table: table, opts: opts,
		queryable: fanout(local, opts), local: local, engine: engine, parser: p, gate: g,
		chunks: newChunkPool(pooledChunks), release: newReleaser(), heavyBytes: opts.QueryMemory() / heavyShare,
		metrics: newMetrics(opts.Registerer),
		logger:  opts.Logger, now: time.Now, started: time.Now(), cwd: cwd,
	}
}

// Register mounts the endpoints under /api/v1. Endpoints Prometheus serves
// by GET and POST accept both; a POST carries its parameters as a form.
func (a *API) Register(r *mux.Router) {
	both := []string{http.MethodGet, http.MethodPost}
	get := []string{http.MethodGet}
	for _, e := range []struct {
		path    string
		f       apiFunc
		methods []string
	}{
		{"/api/v1/query", a.query, both},
		{"/api/v1/query_range", a.queryRange, both},
		{"/api/v1/series", a.series, both},
		{"/api/v1/labels", a.labelNames, both},
		{"/api/v1/label/{name}/values", a.labelValues, get},
		{"/api/v1/metadata", a.metadata, get},
		{"/api/v1/query_exemplars", a.exemplars, both},
		{"/api/v1/format_query", a.formatQuery, both},
		{"/api/v1/parse_query", a.parseQuery, both},
		{"/api/v1/rules", a.rules, get},
		{"/api/v1/alerts", a.alerts, get},
		{"/api/v1/status/buildinfo", a.buildInfo, get},
		{"/api/v1/status/flags", a.flags, get},
		{"/api/v1/status/runtimeinfo", a.runtimeInfo, get},
		{"/api/v1/status/tsdb", a.tsdbStatus, get},
	} {
		r.Handle(e.path, a.wrap(e.f)).Methods(e.methods...)
	}
	if a.opts.Peers != nil {
		r.Handle(cluster.ReadPath, a.RemoteReadHandler()).Methods(http.MethodPost)
	}
}

// result is what an endpoint returns; wrap writes it.
type result struct {
	data     any
	err      *apiError
	warnings annotations.Annotations
	// finalizer runs once the result is encoded (qry.Close: the result's
	// memory is the engine's until then).
	finalizer func()
	// heavy tells a query that held at least heavyBytes, whose memory is
	// returned once the queries are over.
	heavy bool
}

type apiFunc func(r *http.Request) result

// response is Prometheus's envelope.
type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

// wrap serves an endpoint: it writes the result in the envelope, encoded
// once into a body bounded by --query.max-response-bytes. A query's result
// is released (its finalizer run) as soon as it is encoded, before the
// client reads the answer, so a slow client holds only the answer; the
// memory of heavy queries is returned to the system once they are over.
func (a *API) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		heavy := false
		a.release.start()
		defer func() { a.release.end(heavy) }()
		if err := parseForm(w, r); err != nil {
			a.respondError(w, err)
			return
		}
		res := f(r)
		heavy = res.heavy
		if res.err != nil {
			if res.finalizer != nil {
				res.finalizer()
			}
			a.respondError(w, res.err)
			return
		}
		warnings, infos := res.warnings.AsStrings(r.FormValue("query"), 10, 10)
		b := newBody(a.chunks, a.opts.MaxResponseBytes)
		defer b.release()
		err := b.response(response{Status: "success", Data: res.data, Warnings: warnings, Infos: infos})
		if res.finalizer != nil {
			res.finalizer()
		}
		res = result{}
		heavy = heavy || b.Len() >= a.heavyBytes
		switch {
		case errors.Is(err, errTooLarge):
			b.release()
			a.respondError(w, a.tooLarge())
		case err != nil:
			b.release()
			a.respondError(w, &apiError{errorInternal, fmt.Errorf("encoding response: %w", err)})
		default:
			a.send(w, http.StatusOK, b)
		}
	})
}

// respondError writes an error answer, and counts a query refused by a
// limit.
func (a *API) respondError(w http.ResponseWriter, e *apiError) {
	if e.typ == errorInternal {
		a.logger.Error("Query API internal error", "err", e.err)
	}
	if limit := refusedBy(e); limit != "" {
		a.metrics.refused.WithLabelValues(limit).Inc()
	}
	b := newBody(a.chunks, math.MaxInt64)
	defer b.release()
	_ = b.response(response{Status: "error", ErrorType: string(e.typ), Error: e.err.Error()})
	a.send(w, e.typ.code(), b)
}

// send writes an encoded answer. Its length is known, so the client (and
// the compressing writer, which then decides at once) is told.
func (a *API) send(w http.ResponseWriter, code int, b *body) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.FormatInt(b.Len(), 10))
	w.WriteHeader(code)
	if _, err := b.WriteTo(w); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		a.logger.Debug("Writing query API response", "err", err)
	}
}
