package exporter

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// TestInstrumentLikePromhttp serves the same requests through Instrument
// and through promhttp's counter and duration middleware, and wants the
// same series.
func TestInstrumentLikePromhttp(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/teapot":
			w.WriteHeader(http.StatusTeapot)
		case "/silent":
		default:
			_, _ = w.Write([]byte("ok"))
		}
	})
	ours := New(&snapshot.Store{}, Options{})
	theirs := newSelfMetrics(prometheus.NewRegistry())
	l := prometheus.Labels{"handler": "h"}
	reference := promhttp.InstrumentHandlerDuration(theirs.httpDuration.MustCurryWith(l),
		promhttp.InstrumentHandlerCounter(theirs.httpRequests.MustCurryWith(l), handler))
	instrumented := ours.Instrument("h", handler)
	for _, req := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/"}, {"HEAD", "/"}, {"POST", "/teapot"}, {"GET", "/silent"}, {"PROPFIND", "/"}, {"get", "/"}, {"Delete", "/"},
	} {
		for _, h := range []http.Handler{reference, instrumented} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(req.method, req.path, nil))
		}
	}
	for _, pair := range []struct {
		name        string
		ours, their prometheus.Collector
	}{
		{"fabric_http_requests_total", ours.metrics.httpRequests, theirs.httpRequests},
		{"fabric_http_request_duration_seconds", ours.metrics.httpDuration, theirs.httpDuration},
	} {
		want, err := testutil.CollectAndFormat(pair.their, expfmt.TypeTextPlain, pair.name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(want), `method="unknown"`) || pair.name == "fabric_http_requests_total" && !strings.Contains(string(want), `code="418"`) {
			t.Fatalf("the reference did not see every case:\n%s", want)
		}
		if pair.name == "fabric_http_request_duration_seconds" {
			// Durations differ; compare the series and their counts.
			want, got := countLines(t, pair.their, pair.name), countLines(t, pair.ours, pair.name)
			if want != got {
				t.Errorf("duration counts\n%s\nwant (promhttp)\n%s", got, want)
			}
			continue
		}
		if err := testutil.CollectAndCompare(pair.ours, strings.NewReader(string(want))); err != nil {
			t.Error(err)
		}
	}
}

// countLines are the _count lines of a histogram's exposition.
func countLines(t *testing.T, c prometheus.Collector, name string) string {
	t.Helper()
	text, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(text), "\n") {
		if strings.Contains(line, "_count{") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// BenchmarkInstrument is the cost the instrumentation adds to one request,
// against promhttp's counter and duration middleware.
func BenchmarkInstrument(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	theirs := newSelfMetrics(prometheus.NewRegistry())
	l := prometheus.Labels{"handler": "h"}
	for name, h := range map[string]http.Handler{
		"bare":     handler,
		"promhttp": promhttp.InstrumentHandlerDuration(theirs.httpDuration.MustCurryWith(l), promhttp.InstrumentHandlerCounter(theirs.httpRequests.MustCurryWith(l), handler)),
		"ours":     New(&snapshot.Store{}, Options{}).Instrument("h", handler),
	} {
		b.Run(name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
