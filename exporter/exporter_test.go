package exporter

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

const (
	acceptOpenMetrics = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
	// What Prometheus sends with native histograms: protobuf first.
	acceptProtoFirst = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9,text/plain;version=0.0.4;q=0.3"
)

func newServer(t *testing.T, store snapshot.Loader) (*Exporter, *httptest.Server) {
	t.Helper()
	e := New(store, Options{})
	e.AddSource("default") // as the aggregator does for each source
	srv := httptest.NewServer(e.Instrument("metrics", e.Handler()))
	t.Cleanup(srv.Close)
	return e, srv
}

type response struct {
	header http.Header
	body   []byte // decompressed
}

// scrape GETs url with the given Accept and Accept-Encoding. It decompresses
// gzip itself, as one gzip member, so that a broken stream fails the test.
func scrape(t *testing.T, url, accept, acceptEncoding string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	req.Header.Set("Accept-Encoding", acceptEncoding)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		r = zr
	}
	body, err := io.ReadAll(r) // gzip checks the CRC and length at the end
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("data after the gzip stream (err %v)", err)
	}
	return response{header: resp.Header, body: body}
}

// servedData is the part of an exposition that comes from the view.
// Other families are dropped before parsing: in OpenMetrics the Go
// collector's go_memstats_alloc_bytes gauge and go_memstats_alloc_bytes_total
// counter share a family name, which expfmt's strict decoder rejects.
func servedData(t *testing.T, body []byte, format expfmt.Format) string {
	t.Helper()
	var kept []byte
	for line := range bytes.Lines(body) {
		name := bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("# HELP ")), []byte("# TYPE "))
		if isData(string(name)) || bytes.Equal(line, []byte("# EOF\n")) {
			kept = append(kept, line...)
		}
	}
	fams := decode(t, kept, format)
	for name := range fams {
		if !isData(name) {
			delete(fams, name)
		}
	}
	return canonical(t, fams)
}

// isData tells the view's families (data and view-level gauges) from the
// self-metrics, whose prefixes no data metric may take.
func isData(name string) bool {
	for _, prefix := range schema.ReservedPrefixes {
		if strings.HasPrefix(name, prefix) {
			return prefix == schema.Namespace+"_snapshot_"
		}
	}
	return true
}

func collectorFamilies(t *testing.T, store snapshot.Loader) string {
	return canonical(t, gatherMap(t, newPedantic(t, NewCollector(store))))
}

func TestHandlerFormats(t *testing.T) {
	store := oddFixture(t)
	_, srv := newServer(t, store)
	for _, tc := range []struct {
		name, accept, encoding string
		want                   expfmt.FormatType
	}{
		{"text", "", "identity", expfmt.TypeTextPlain},
		{"text gzip", "", "gzip", expfmt.TypeTextPlain},
		{"openmetrics", acceptOpenMetrics, "identity", expfmt.TypeOpenMetrics},
		{"openmetrics gzip", acceptOpenMetrics, "br;q=1.0, gzip;q=0.8", expfmt.TypeOpenMetrics},
		{"protobuf falls back to text", acceptProtoFirst, "", expfmt.TypeTextPlain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Twice: the second scrape is served from the cache.
			for range 2 {
				r := scrape(t, srv.URL, tc.accept, tc.encoding)
				format := expfmt.Format(r.header.Get("Content-Type"))
				if format.FormatType() != tc.want {
					t.Fatalf("Content-Type %q, want format type %d", format, tc.want)
				}
				if gz := r.header.Get("Content-Encoding") == "gzip"; gz != strings.Contains(tc.encoding, "gzip") {
					t.Errorf("Content-Encoding %q for Accept-Encoding %q", r.header.Get("Content-Encoding"), tc.encoding)
				}
				if tc.want == expfmt.TypeOpenMetrics {
					if !bytes.HasSuffix(r.body, []byte("\n# EOF\n")) {
						t.Errorf("OpenMetrics body does not end in # EOF")
					}
					if !bytes.Contains(r.body, []byte("# TYPE fabric_switch_receive_bytes counter\n")) {
						t.Errorf("OpenMetrics counter family not named without _total")
					}
				}
				if got, want := servedData(t, r.body, format), collectorFamilies(t, store); got != want {
					t.Fatalf("served data differs from the collector's\n--- served\n%s\n--- collector\n%s", got, want)
				}
				if !bytes.Contains(r.body, []byte("fabric_ingest_failures_total")) {
					t.Errorf("self-metrics missing")
				}
			}
		})
	}
}

func TestHandlerRefreshesOnNewSnapshot(t *testing.T) {
	store := smallFixture(t)
	_, srv := newServer(t, store)
	for _, enc := range []string{"identity", "gzip"} {
		scrape(t, srv.URL, "", enc) // fill the cache with the first snapshot
	}
	publish(t, store, []string{"switch_id"}, []string{"Power_W"}, [][]any{{"sw-new", 99.0}})
	for _, enc := range []string{"identity", "gzip"} {
		r := scrape(t, srv.URL, "", enc)
		if got, want := servedData(t, r.body, expfmt.FmtText), collectorFamilies(t, store); got != want {
			t.Fatalf("%s: served data is not the new snapshot's\n--- served\n%s\n--- collector\n%s", enc, got, want)
		}
	}
}

func TestHandlerBeforeFirstSnapshot(t *testing.T) {
	_, srv := newServer(t, &snapshot.Store{})
	for _, enc := range []string{"identity", "gzip"} {
		r := scrape(t, srv.URL, "", enc)
		if got := servedData(t, r.body, expfmt.FmtText); got != "" {
			t.Errorf("%s: data before the first snapshot:\n%s", enc, got)
		}
		fams := decode(t, r.body, expfmt.FmtText)
		if v := fams["fabric_source_up"].GetMetric()[0].GetGauge().GetValue(); v != 0 {
			t.Errorf("fabric_source_up = %g before the first poll, want 0", v)
		}
	}
}

func TestHandlerLint(t *testing.T) {
	_, srv := newServer(t, smallFixture(t))
	r := scrape(t, srv.URL, "", "")
	problems, err := promlint.New(bytes.NewReader(r.body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// blockingWriter stalls the response until released, holding its request's
// in-flight slot.
type blockingWriter struct {
	*httptest.ResponseRecorder
	entered, release chan struct{}
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	select {
	case w.entered <- struct{}{}:
		<-w.release
	default:
	}
	return w.ResponseRecorder.Write(b)
}

func TestHandlerMaxRequestsInFlight(t *testing.T) {
	e := New(smallFixture(t), Options{MaxRequestsInFlight: 1, Timeout: time.Minute})
	h := e.Handler()
	first := &blockingWriter{httptest.NewRecorder(), make(chan struct{}), make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	}()
	<-first.entered
	second := httptest.NewRecorder()
	h.ServeHTTP(second, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if second.Code != http.StatusServiceUnavailable {
		t.Errorf("second concurrent request: %d, want 503", second.Code)
	}
	close(first.release)
	<-done
	third := httptest.NewRecorder()
	h.ServeHTTP(third, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if first.Code != http.StatusOK || third.Code != http.StatusOK {
		t.Errorf("requests within the limit: %d and %d, want 200", first.Code, third.Code)
	}
}

// selfMetricNames are the per-source self-metrics the tests compare.
var selfMetricNames = []string{"fabric_ingest_failures_total", "fabric_ingest_total", "fabric_source_up", "fabric_ingest_last_success_timestamp_seconds", "fabric_ingest_clock_skew_clamped_total"}

const selfMetricsHelp = `
# HELP fabric_ingest_failures_total Rejected ingestion cycles by source and reason; a rejected poll keeps the source's last good snapshot.
# TYPE fabric_ingest_failures_total counter
# HELP fabric_ingest_total Ingestion cycles by source and result.
# TYPE fabric_ingest_total counter
# HELP fabric_source_up 1 if the last poll of the source succeeded, 0 if it failed or none has succeeded yet. Data series are cached from the last successful poll either way.
# TYPE fabric_source_up gauge
# HELP fabric_ingest_last_success_timestamp_seconds When the last successful ingestion cycle of the source ended, in seconds since the epoch; 0 before the first.
# TYPE fabric_ingest_last_success_timestamp_seconds gauge
# HELP fabric_ingest_clock_skew_clamped_total Accepted polls whose source time was more than --source.max-clock-skew ahead of the poll and was replaced by the poll time, per source: the source's clock is wrong.
# TYPE fabric_ingest_clock_skew_clamped_total counter
`

// sourceSeries writes the expected per-source series of one source: the
// failures by reason (all others 0), cycles by result, up, the last
// success and the clamped polls.
func sourceSeries(source string, failures map[string]int, success, failure int, up int, lastSuccess string, clamped int) string {
	var b strings.Builder
	for _, r := range ingest.Reasons {
		fmt.Fprintf(&b, "fabric_ingest_failures_total{reason=%q,source=%q} %d\n", r, source, failures[string(r)])
	}
	fmt.Fprintf(&b, "fabric_ingest_total{result=\"failure\",source=%q} %d\n", source, failure)
	fmt.Fprintf(&b, "fabric_ingest_total{result=\"success\",source=%q} %d\n", source, success)
	fmt.Fprintf(&b, "fabric_source_up{source=%q} %d\n", source, up)
	fmt.Fprintf(&b, "fabric_ingest_last_success_timestamp_seconds{source=%q} %s\n", source, lastSuccess)
	fmt.Fprintf(&b, "fabric_ingest_clock_skew_clamped_total{source=%q} %d\n", source, clamped)
	return b.String()
}

// TestSelfMetricsFromStart: AddSource creates every series of a source at
// zero before its first poll, once however often it is called.
func TestSelfMetricsFromStart(t *testing.T) {
	e := New(&snapshot.Store{}, Options{})
	if n, err := testutil.GatherAndCount(e.Registry(), selfMetricNames...); err != nil || n != 0 {
		t.Errorf("%d per-source series (err %v) before any source was added, want 0", n, err)
	}
	e.AddSource("east")
	e.AddSource("west")
	e.AddSource("east")
	want := selfMetricsHelp + sourceSeries("east", nil, 0, 0, 0, "0", 0) + sourceSeries("west", nil, 0, 0, 0, "0", 0)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), selfMetricNames...); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{
		"fabric_aggregator_build_info": 1, "go_goroutines": 1, "process_cpu_seconds_total": 1,
		"fabric_ingest_duration_seconds": 2, "fabric_ingest_phase_duration_seconds": 6,
	} {
		if n, err := testutil.GatherAndCount(e.Registry(), name); err != nil || n != want {
			t.Errorf("%s: %d series (err %v), want %d", name, n, err, want)
		}
	}
}

// TestSelfMetricsPerSource: two sources, one fails; each has its own
// failures, cycles, up gauge, last success and phase durations, and the
// failing one does not take the other's up gauge down.
func TestSelfMetricsPerSource(t *testing.T) {
	e := New(&snapshot.Store{}, Options{})
	e.AddSource("east")
	e.AddSource("west")
	start := time.Unix(1700000000, 0)
	ok := func(source string, at time.Duration) ingest.Cycle {
		return ingest.Cycle{Source: source, Start: start.Add(at), Fetch: time.Second, Parse: time.Second, Swap: time.Millisecond, Total: 2 * time.Second}
	}
	failed := func(source string, at time.Duration, reason ingest.Reason) ingest.Cycle {
		return ingest.Cycle{Source: source, Start: start.Add(at), Fetch: time.Second, Total: time.Second,
			Err: &ingest.Error{Reason: reason, Err: errors.New("failed")}}
	}
	e.Observe(ok("east", 0))
	e.Observe(ok("west", 0))
	e.Observe(failed("west", time.Minute, ingest.ReasonHTTPStatus))
	clamped := ok("east", time.Minute) // the source's clock a year ahead
	clamped.ClampedFrom = start.AddDate(1, 0, 0)
	e.Observe(clamped)
	e.Observe(failed("west", 2*time.Minute, ingest.ReasonTimeout))
	// A source nobody added is added by its first cycle, with every reason.
	e.Observe(failed("north", 0, ingest.ReasonConnection))

	want := selfMetricsHelp +
		sourceSeries("east", nil, 2, 0, 1, "1.700000062e+09", 1) +
		sourceSeries("north", map[string]int{"connection": 1}, 0, 1, 0, "0", 0) +
		sourceSeries("west", map[string]int{"http_status": 1, "timeout": 1}, 1, 2, 0, "1.700000002e+09", 0)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), selfMetricNames...); err != nil {
		t.Fatal(err)
	}
	// Phases: a failed cycle stops after its fetch.
	for _, tc := range []struct {
		source string
		counts map[string]uint64
	}{
		{"east", map[string]uint64{"fetch": 2, "parse": 2, "swap": 2}},
		{"west", map[string]uint64{"fetch": 3, "parse": 1, "swap": 1}},
		{"north", map[string]uint64{"fetch": 1, "parse": 0, "swap": 0}},
	} {
		for phase, want := range tc.counts {
			if got := histogramCount(t, e, tc.source, phase); got != want {
				t.Errorf("%s: phase %s observed %d times, want %d", tc.source, phase, got, want)
			}
		}
	}
	// West recovers; east is unaffected either way.
	e.Observe(ok("west", 3*time.Minute))
	for source, want := range map[string]float64{"east": 1, "west": 1, "north": 0} {
		if got := testutil.ToFloat64(e.metrics.up.WithLabelValues(source)); got != want {
			t.Errorf("fabric_source_up{source=%q} = %g, want %g", source, got, want)
		}
	}
}

func histogramCount(t *testing.T, e *Exporter, source, phase string) uint64 {
	t.Helper()
	for _, m := range gatherMap(t, e.Registry())["fabric_ingest_phase_duration_seconds"].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		if labels["source"] == source && labels["phase"] == phase {
			return m.GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no phase %s of source %s", phase, source)
	return 0
}

func TestInstrument(t *testing.T) {
	e, srv := newServer(t, smallFixture(t))
	scrape(t, srv.URL, "", "")
	const want = `
# HELP fabric_http_requests_total HTTP requests served, by handler, status code and method.
# TYPE fabric_http_requests_total counter
fabric_http_requests_total{code="200",handler="metrics",method="get"} 1
`
	// The instrumentation counts a request after its handler returns, which
	// can be after the client has read the whole body: poll with a deadline.
	var (
		err       error
		durations int
	)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		err = testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), "fabric_http_requests_total")
		durations, _ = testutil.GatherAndCount(e.Registry(), "fabric_http_request_duration_seconds")
		if err == nil && durations == 1 {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if durations != 1 {
		t.Errorf("fabric_http_request_duration_seconds: %d series, want 1", durations)
	}
}

func TestSelfMetricsLint(t *testing.T) {
	e := New(&snapshot.Store{}, Options{})
	e.AddSource("default")
	problems, err := testutil.GatherAndLint(e.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestAcceptsGzip(t *testing.T) {
	for in, want := range map[string]bool{
		"": false, "gzip": true, "deflate, gzip;q=1.0, *;q=0.5": true, "gzip;q=0": false,
		"GZIP": true, "identity": false, "x-gzip": false, "gzip; q=0.001": true,
	} {
		h := http.Header{"Accept-Encoding": {in}}
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", in, got, want)
		}
	}
}
