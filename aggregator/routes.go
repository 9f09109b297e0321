package aggregator

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/queryapi"
	"github.com/fabrictelemetry/aggregator/restapi"
)

func (a *Aggregator) routes() {
	r := a.router
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		restapi.WriteError(w, http.StatusNotFound, "no such endpoint: "+req.URL.Path)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", a.allowedMethods(req))
		restapi.WriteError(w, http.StatusMethodNotAllowed, "method "+req.Method+" not allowed on "+req.URL.Path)
	})
	restapi.New(a.store, a.shortestInterval(), a.now).WithPeers(a.peers).Register(r)
	queryOpts := a.cfg.Query
	queryOpts.Logger = a.cfg.Logger.With("component", "query")
	queryOpts.Registerer = a.exp.Registry()
	queryOpts.Peers = a.peers
	if a.self != nil {
		queryOpts.SelfMetrics = a.self
	}
	queryapi.New(a.histories, a.cfg.Schema, queryOpts).Register(r)
	r.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "Healthy.")
	}).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/-/ready", a.ready).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", a.exp.Handler()).Methods(http.MethodGet, http.MethodHead)
	if a.cfg.EnablePprof {
		// Read-only profiles; off by default since a CPU profile costs
		// the process while it runs.
		a.pprofRoutes()
	}
	compressRoutes(r)
}

// compressed tells the routes whose answers are gzipped for clients that
// accept it: the query API (a range query's matrix is megabytes of JSON)
// and ListMetrics (65 MB on the 2,000 × 64-port fabric). GetMetric's
// answers are a few hundred bytes and are left alone; /metrics negotiates
// its own encoding, and so does remote read (snappy), whose streamed
// answer must reach the reader frame by frame, its trailer last.
func compressed(path string) bool {
	return strings.HasPrefix(path, "/api/v1/") && path != cluster.ReadPath || path == "/telemetry/ListMetrics"
}

// compressRoutes wraps the compressed routes with gzhttp, which gzips an
// answer of more than 1 KiB when the request's Accept-Encoding allows it
// and adds Vary: Accept-Encoding. The fastest level: on the fabric's
// ListMetrics it compresses 720 MB/s to 12% of the size, where the default
// level manages 340 MB/s to 10%. Call it after the last of those routes,
// before instrumentRoutes, so the HTTP metrics see the final status.
func compressRoutes(r *mux.Router) {
	gzip, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false), gzhttp.CompressionLevel(gzip.BestSpeed))
	if err != nil {
		panic(err) // the options are constants
	}
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if h := route.GetHandler(); h != nil && err == nil && compressed(tpl) {
			route.Handler(gzip(h))
		}
		return nil
	})
}

// shortestInterval is how long a client is told to wait before the first
// snapshot exists.
func (a *Aggregator) shortestInterval() time.Duration {
	shortest := time.Duration(a.cfg.Sources[0].Interval)
	for _, sc := range a.cfg.Sources {
		shortest = min(shortest, time.Duration(sc.Interval))
	}
	return shortest
}

// instrumentRoutes wraps every route registered so far, and the not-found
// and method-not-allowed answers, with the exporter's HTTP metrics, labelled
// by path template. Call it once, after the last route.
func (a *Aggregator) instrumentRoutes() {
	r := a.router
	_ = r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if h := route.GetHandler(); h != nil && err == nil {
			route.Handler(a.exp.Instrument(tpl, h))
		}
		return nil
	})
	r.NotFoundHandler = a.exp.Instrument("not_found", r.NotFoundHandler)
	r.MethodNotAllowedHandler = a.exp.Instrument("method_not_allowed", r.MethodNotAllowedHandler)
}

// historyDropPolls is how many polls in a row a source's PromQL history
// may drop snapshots before /-/ready fails: one rewind, or a budget
// overrun while a fabric's rows change once, is the history doing its job;
// a drop on every poll is a source the history cannot follow (its time
// keeps going back, or its rows keep changing beyond the series budget),
// and PromQL then answers less than REST does.
const historyDropPolls = 3

// ready is 200 while every poll log followed has been read up to where it
// ended when the aggregator started (a replica serves its replayed history
// before it says it is ready), the served snapshot is fresh and every
// source's PromQL history follows what is served. Stale data is still
// served by the API with its age, and a history that drops snapshots still
// answers PromQL; readiness is what tells a load balancer or an operator
// that something is wrong.
//
// A partitioned replica is ready once it serves every partition the group
// assigned it (see feed.groupReady); one the group assigned none serves
// nothing of its own, so the rules about its snapshot do not apply.
func (a *Aggregator) ready(w http.ResponseWriter, _ *http.Request) {
	readyText := "Ready."
	for _, f := range a.feeds {
		if ok, why := f.ready(); !ok {
			writeText(w, http.StatusServiceUnavailable, fmt.Sprintf("Not ready: source %q: %s.", f.cfg.Name, why))
			return
		}
		if f.group == nil {
			continue
		}
		if n := f.unowned(); n > 0 {
			readyText = fmt.Sprintf("Ready; %d partitions of the poll log %s are assigned to no replica: answers lacking them say they are partial.", n, f.topic)
		}
		if owned, _ := f.group.Partitions(); len(owned) == 0 {
			writeText(w, http.StatusOK, readyText+" No partition is assigned to this replica: it answers from the others'.")
			return
		}
	}
	snap := a.store.Load()
	if snap == nil {
		writeText(w, http.StatusServiceUnavailable, "Not ready: no snapshot yet.")
		return
	}
	age := a.now().Sub(snap.Time())
	if age > a.cfg.MaxStaleness {
		writeText(w, http.StatusServiceUnavailable, fmt.Sprintf("Not ready: snapshot is %s old (max %s).", age.Round(1e6), a.cfg.MaxStaleness))
		return
	}
	for _, src := range *a.served.Load() {
		for _, h := range src.histories() {
			if st := h.Streak(); st.Appends >= historyDropPolls {
				writeText(w, http.StatusServiceUnavailable, fmt.Sprintf(
					"Not ready: source %q: its PromQL history dropped snapshots on each of its last %d polls (%s: %s).",
					src.cfg.Name, st.Appends, st.Reason, st.Detail))
				return
			}
		}
	}
	writeText(w, http.StatusOK, readyText)
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// pprofRoutes mounts the runtime profiles (CPU, heap, goroutines, ...) on
// the router itself, not on http.DefaultServeMux, so they share the
// server's TLS and basic auth.
func (a *Aggregator) pprofRoutes() {
	r := a.router
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline).Methods(http.MethodGet)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile).Methods(http.MethodGet)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol).Methods(http.MethodGet)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace).Methods(http.MethodGet)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index).Methods(http.MethodGet)
}

// allowedMethods lists the methods the routes of req's path take, for the
// Allow header of a 405 (the PromQL endpoints take POST too).
func (a *Aggregator) allowedMethods(req *http.Request) string {
	var methods []string
	_ = a.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		var m mux.RouteMatch
		if route.Match(req, &m) || errors.Is(m.MatchErr, mux.ErrMethodMismatch) {
			ms, _ := route.GetMethods()
			for _, method := range ms {
				if !slices.Contains(methods, method) {
					methods = append(methods, method)
				}
			}
		}
		return nil
	})
	return strings.Join(methods, ", ")
}
