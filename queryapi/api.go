package queryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/schema"
)

// API serves the Prometheus HTTP API over the histories of every source.
type API struct {
	histories []*history.History
	table     *schema.Table
	opts      Options
	queryable storage.Queryable
	engine    *promql.Engine
	parser    parser.Parser
	gate      *gate
	logger    *slog.Logger
	now       func() time.Time
}

// New returns the API over the histories of every source (one per source,
// so that each keeps its samples' true times); queries see their union.
// table gives the metadata of known columns.
func New(histories []*history.History, table *schema.Table, opts Options) *API {
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
		Parser:                   p,
	})
	return &API{
		histories: histories, table: table, opts: opts,
		queryable: history.Union(histories...), engine: engine, parser: p, gate: g,
		logger: opts.Logger, now: time.Now,
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
		{"/api/v1/rules", a.rules, get},
		{"/api/v1/alerts", a.alerts, get},
		{"/api/v1/status/buildinfo", a.buildInfo, get},
		{"/api/v1/status/flags", a.flags, get},
	} {
		r.Handle(e.path, a.wrap(e.f)).Methods(e.methods...)
	}
}

// result is what an endpoint returns; wrap writes it.
type result struct {
	data     any
	err      *apiError
	warnings annotations.Annotations
	// finalizer runs after the response is written (qry.Close: the
	// result's memory is the engine's until then).
	finalizer func()
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

func (a *API) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			a.respondError(w, badData(fmt.Errorf("error parsing form values: %w", err)))
			return
		}
		res := f(r)
		if res.finalizer != nil {
			defer res.finalizer()
		}
		if res.err != nil {
			a.respondError(w, res.err)
			return
		}
		warnings, infos := res.warnings.AsStrings(r.FormValue("query"), 10, 10)
		a.write(w, http.StatusOK, response{Status: "success", Data: res.data, Warnings: warnings, Infos: infos})
	})
}

func (a *API) respondError(w http.ResponseWriter, e *apiError) {
	if e.typ == errorInternal {
		a.logger.Error("Query API internal error", "err", e.err)
	}
	a.write(w, e.typ.code(), response{Status: "error", ErrorType: string(e.typ), Error: e.err.Error()})
}

func (a *API) write(w http.ResponseWriter, code int, resp response) {
	b, err := json.Marshal(resp)
	if err != nil {
		a.logger.Error("Encoding query API response", "err", err)
		b, _ = json.Marshal(response{Status: "error", ErrorType: string(errorInternal), Error: "encoding response: " + err.Error()})
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		a.logger.Debug("Writing query API response", "err", err)
	}
}
