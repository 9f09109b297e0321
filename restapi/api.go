// Package restapi serves the seed's REST endpoints, /telemetry/GetMetric and
// /telemetry/ListMetrics, from the latest published snapshot. Each request
// loads the snapshot pointer once and answers from that snapshot alone: no
// locks, one consistent view. Answers are written with a pooled buffer and
// hand-rolled JSON, so a lookup costs two map probes and no allocation.
package restapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// API answers REST queries from a snapshot store.
type API struct {
	store      *snapshot.Store
	now        func() time.Time
	retryAfter string
	buffers    sync.Pool
}

// New returns the API over store. retryAfter is what a client is told to
// wait before the first snapshot exists (one poll interval); now is the
// clock (time.Now when nil).
func New(store *snapshot.Store, retryAfter time.Duration, now func() time.Time) *API {
	if now == nil {
		now = time.Now
	}
	secs := max(int(retryAfter.Round(time.Second)/time.Second), 1)
	return &API{
		store:      store,
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
}

var getMetricParams = []string{"switch_id", "metric_name"}

// GetMetric answers one value: ?switch_id=SW-05&metric_name=Latency_Avg_uSec.
func (a *API) GetMetric(w http.ResponseWriter, r *http.Request) {
	var values [2]string
	if err := singleParams(r.URL.RawQuery, getMetricParams, values[:]); err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	switchID, metric := values[0], values[1]
	snap := a.store.Load()
	if snap == nil {
		a.notReady(w)
		return
	}
	row, _, ok := snap.SwitchRows(switchID)
	if !ok {
		WriteError(w, http.StatusNotFound, "unknown switch_id "+strconv.Quote(clip(switchID)))
		return
	}
	col, ok := snap.Column(metric)
	if !ok {
		WriteError(w, http.StatusNotFound, "unknown metric_name "+strconv.Quote(clip(metric)))
		return
	}
	bp := a.buffers.Get().(*[]byte)
	b := append((*bp)[:0], `{"switch_id":`...)
	b = appendString(b, switchID)
	b = append(b, `,"metric_name":`...)
	b = appendString(b, metric)
	b = append(b, `,"value":`...)
	b = snap.Value(row, col).AppendJSON(b)
	b = a.appendTime(b, snap)
	b = append(b, "}\n"...)
	writeJSON(w, http.StatusOK, b)
	*bp = b
	a.buffers.Put(bp)
}

// ListMetrics answers every switch's metrics, optionally filtered by
// repeatable switch_id and metric_name parameters.
func (a *API) ListMetrics(w http.ResponseWriter, r *http.Request) {
	filters, err := multiParams(r.URL.RawQuery, "switch_id", "metric_name")
	if err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := a.store.Load()
	if snap == nil {
		a.notReady(w)
		return
	}
	switches, cols, err := selectList(snap, filters["switch_id"], filters["metric_name"])
	if err != nil {
		WriteError(w, http.StatusNotFound, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	a.writeList(bw, snap, switches, cols)
	_ = bw.Flush() // a client that went away is not an error worth logging
}

// writeList streams the list; the snapshot cannot change under it, so the
// answer is consistent however long the client takes to read it.
func (a *API) writeList(bw *bufio.Writer, snap *snapshot.Snapshot, switches []string, cols []int) {
	b := append(make([]byte, 0, 4096), `{"timestamp":"`...)
	b = append(b, snap.TimeText()...)
	b = append(b, `","age_seconds":`...)
	b = appendSeconds(b, a.now().Sub(snap.Time()).Seconds())
	b = append(b, `,"switch_count":`...)
	b = strconv.AppendInt(b, int64(len(switches)), 10)
	b = append(b, `,"switches":[`...)
	for i, id := range switches {
		if i > 0 {
			b = append(b, ',')
		}
		row, _, _ := snap.SwitchRows(id)
		b = append(b, `{"switch_id":`...)
		b = appendString(b, id)
		b = append(b, `,"metrics":{`...)
		first := true
		for _, col := range cols {
			v := snap.Value(row, col)
			if !v.Present() {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, snap.Columns()[col])
			b = append(b, ':')
			b = v.AppendJSON(b)
		}
		b = append(b, "}}"...)
		if len(b) > 32<<10 {
			_, _ = bw.Write(b)
			b = b[:0]
		}
	}
	b = append(b, "]}\n"...)
	_, _ = bw.Write(b)
}

// selectList resolves the filters against the snapshot: all switches and
// columns when a filter is absent, a 404 message when a value is unknown.
func selectList(snap *snapshot.Snapshot, switchIDs, metrics []string) ([]string, []int, error) {
	switches := snap.Switches()
	if len(switchIDs) > 0 {
		switches = make([]string, 0, len(switchIDs))
		seen := make(map[string]bool, len(switchIDs))
		for _, id := range switchIDs {
			if _, _, ok := snap.SwitchRows(id); !ok {
				return nil, nil, notFound("switch_id", id)
			}
			if !seen[id] {
				seen[id] = true
				switches = append(switches, id)
			}
		}
		slices.Sort(switches)
	}
	var cols []int
	if len(metrics) == 0 {
		cols = make([]int, len(snap.Columns()))
		for i := range cols {
			cols[i] = i
		}
		return switches, cols, nil
	}
	seen := make(map[int]bool, len(metrics))
	for _, m := range metrics {
		col, ok := snap.Column(m)
		if !ok {
			return nil, nil, notFound("metric_name", m)
		}
		if !seen[col] {
			seen[col] = true
			cols = append(cols, col)
		}
	}
	return switches, cols, nil
}

func (a *API) appendTime(b []byte, snap *snapshot.Snapshot) []byte {
	b = append(b, `,"timestamp":"`...)
	b = append(b, snap.TimeText()...)
	b = append(b, `","age_seconds":`...)
	return appendSeconds(b, a.now().Sub(snap.Time()).Seconds())
}

func (a *API) notReady(w http.ResponseWriter) {
	w.Header().Set("Retry-After", a.retryAfter)
	WriteError(w, http.StatusServiceUnavailable, "no snapshot yet: the source has not been polled successfully")
}

type notFoundError struct{ msg string }

func (e notFoundError) Error() string { return e.msg }

func notFound(param, value string) error {
	return notFoundError{msg: "unknown " + param + " " + strconv.Quote(clip(value))}
}

var jsonContentType = []string{"application/json"}

// writeJSON writes a small answer; net/http adds its Content-Length.
func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// WriteError writes {"error": msg} with the status code; the router's 404
// and 405 answers use it too, so every error has one shape.
func WriteError(w http.ResponseWriter, code int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	writeJSON(w, code, append(body, '\n'))
}
