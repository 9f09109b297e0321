package exporter

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instrument counts and times the requests of h as handlerName in
// fabric_http_requests_total and fabric_http_request_duration_seconds,
// with the labels promhttp's InstrumentHandlerCounter and
// InstrumentHandlerDuration give (code, method). It does the same job for
// less: the series of each outcome are resolved once rather than per
// request, and the status recorder comes from a pool, which matters on a
// 300 ns GetMetric.
func (e *Exporter) Instrument(handlerName string, h http.Handler) http.Handler {
	l := prometheus.Labels{"handler": handlerName}
	return &instrumented{
		next:     h,
		requests: e.metrics.httpRequests.MustCurryWith(l),
		duration: e.metrics.httpDuration.MustCurryWith(l),
	}
}

type instrumented struct {
	next     http.Handler
	requests *prometheus.CounterVec
	duration prometheus.ObserverVec
	series   sync.Map // outcome → *outcomeSeries
}

type outcome struct {
	code   int
	method string
}

type outcomeSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

var recorders = sync.Pool{New: func() any { return new(statusRecorder) }}

func (h *instrumented) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := recorders.Get().(*statusRecorder)
	rec.ResponseWriter, rec.code = w, 0
	h.next.ServeHTTP(rec, r)
	o := outcome{code: rec.status(), method: methodLabel(r.Method)}
	rec.ResponseWriter = nil
	recorders.Put(rec)
	s := h.seriesOf(o)
	s.requests.Inc()
	s.duration.Observe(time.Since(start).Seconds())
}

func (h *instrumented) seriesOf(o outcome) *outcomeSeries {
	if s, ok := h.series.Load(o); ok {
		return s.(*outcomeSeries)
	}
	s, _ := h.series.LoadOrStore(o, &outcomeSeries{
		requests: h.requests.With(prometheus.Labels{"code": strconv.Itoa(o.code), "method": o.method}),
		duration: h.duration.With(prometheus.Labels{"method": o.method}), // by method only, as the histogram's Help says
	})
	return s.(*outcomeSeries)
}

// methodLabel is the method as promhttp labels it: lower case for the
// standard methods written in upper or lower case, "unknown" for anything else, so that a
// client inventing methods cannot add series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, "get":
		return "get"
	case http.MethodHead, "head":
		return "head"
	case http.MethodPost, "post":
		return "post"
	case http.MethodPut, "put":
		return "put"
	case http.MethodDelete, "delete":
		return "delete"
	case http.MethodPatch, "patch":
		return "patch"
	case http.MethodOptions, "options":
		return "options"
	case http.MethodConnect, "connect":
		return "connect"
	case http.MethodTrace, "trace":
		return "trace"
	}
	return "unknown"
}

// statusRecorder remembers the status code a handler wrote. Unwrap lets
// http.ResponseController reach the connection (write deadlines, flushes).
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK // a handler that wrote nothing sent 200
	}
	return s.code
}
