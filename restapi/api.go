// Package restapi serves the seed's REST endpoints, /telemetry/GetMetric and
// /telemetry/ListMetrics, from the latest published view: the switch-level
// snapshot and the per-port snapshot. Each request loads the view once and
// answers from it alone: no locks, one consistent picture. Answers are
// written with a pooled buffer and hand-rolled JSON, so a switch-level
// lookup costs a few map probes and no allocation.
//
// Values are the source's own, as parsed: a schema's scale (UFM's 4-octet
// data words exported in bytes on /metrics) is not applied here.
package restapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// API answers REST queries from the views a Loader publishes.
type API struct {
	src        snapshot.Loader
	peers      *cluster.Peers // nil: this replica's view alone (fanout.go)
	now        func() time.Time
	retryAfter string
	buffers    sync.Pool
}

// New returns the API over src. retryAfter is what a client is told to
// wait before the first view exists (one poll interval); now is the clock
// (time.Now when nil).
func New(src snapshot.Loader, retryAfter time.Duration, now func() time.Time) *API {
	if now == nil {
		now = time.Now
	}
	secs := max(int(retryAfter.Round(time.Second)/time.Second), 1)
	return &API{
		src:        src,
		now:        now,
		retryAfter: strconv.Itoa(secs),
		buffers:    sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }},
	}
}

// Register mounts the endpoints on r. GET and HEAD only; the router answers
// other methods with 405.
func (a *API) Register(r *mux.Router) {
	r.HandleFunc("/telemetry/GetMetric", a.GetMetric).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/telemetry/ListMetrics", a.ListMetrics).Methods(http.MethodGet, http.MethodHead)
	a.registerRows(r)
}

// load returns the view to answer from, or nil (and answers 503) when
// there is nothing to serve yet.
func (a *API) load(w http.ResponseWriter) *snapshot.View {
	view := a.src.Load()
	if view == nil || len(view.Parts()) == 0 {
		w.Header().Set("Retry-After", a.retryAfter)
		WriteError(w, http.StatusServiceUnavailable, "no snapshot yet: the source has not been polled successfully")
		return nil
	}
	return view
}

// appendTime appends the answer's timestamp and age members.
func (a *API) appendTime(b []byte, text string, t time.Time) []byte {
	b = append(b, `,"timestamp":"`...)
	b = append(b, text...)
	b = append(b, `","age_seconds":`...)
	return appendSeconds(b, a.now().Sub(t).Seconds())
}
