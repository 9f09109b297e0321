package selfscrape

import (
	"context"
	"math"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fixture is a registry like the exporter's self registry: a counter, a
// gauge vector, a classic histogram and a metric with its own job label.
type fixture struct {
	reg      *prometheus.Registry
	requests prometheus.Counter
	up       *prometheus.GaugeVec
	duration prometheus.Histogram
}

func newFixture() *fixture {
	f := &fixture{
		reg:      prometheus.NewRegistry(),
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "test_requests_total", Help: "Requests."}),
		up:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_source_up", Help: "Up."}, []string{"source"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "test_duration_seconds", Help: "Duration.", Buckets: []float64{0.5, 1, 2.5}}),
	}
	jobbed := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_jobbed", Help: "Has a job label.", ConstLabels: prometheus.Labels{"job": "mine"}})
	f.reg.MustRegister(f.requests, f.up, f.duration, jobbed)
	return f
}

// openStore is a store with its head open, scraped by the test itself
// rather than by Run; the head is closed when the test ends.
func openStore(t *testing.T, g prometheus.Gatherer, retention time.Duration) *Store {
	t.Helper()
	s := New(g, Options{Interval: 10 * time.Second, Retention: retention, Job: "fabric-aggregator", Instance: "agg:8080"})
	dir, err := s.open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close(dir) })
	return s
}

func scrape(t *testing.T, s *Store, at time.Time) {
	t.Helper()
	if err := s.Scrape(t.Context(), at); err != nil {
		t.Fatal(err)
	}
}

var engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})

// instant evaluates q over the store at t and returns the samples by their
// labels' text.
func instant(t *testing.T, q storage.Queryable, expr string, at time.Time) map[string]float64 {
	t.Helper()
	qry, err := engine.NewInstantQuery(t.Context(), q, nil, expr, at)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(t.Context())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.String()] = s.F
	}
	return out
}

func TestSeriesAsAScrapeWritesThem(t *testing.T) {
	f := newFixture()
	f.requests.Add(3)
	f.up.WithLabelValues("a").Set(1)
	f.duration.Observe(0.7)
	f.duration.Observe(3)
	s := openStore(t, f.reg, time.Hour)
	scrape(t, s, t0)

	const target = `instance="agg:8080", job="fabric-aggregator"`
	for expr, want := range map[string]map[string]float64{
		"test_requests_total": {`{__name__="test_requests_total", ` + target + `}`: 3},
		"test_source_up":      {`{__name__="test_source_up", ` + target + `, source="a"}`: 1},
		// A classic histogram is its _bucket, _sum and _count series, the
		// le of a whole bucket bound written as a float, as Prometheus 3
		// writes it.
		"test_duration_seconds_bucket": {
			`{__name__="test_duration_seconds_bucket", ` + target + `, le="0.5"}`:  0,
			`{__name__="test_duration_seconds_bucket", ` + target + `, le="1.0"}`:  1,
			`{__name__="test_duration_seconds_bucket", ` + target + `, le="2.5"}`:  1,
			`{__name__="test_duration_seconds_bucket", ` + target + `, le="+Inf"}`: 2,
		},
		"test_duration_seconds_sum":   {`{__name__="test_duration_seconds_sum", ` + target + `}`: 3.7},
		"test_duration_seconds_count": {`{__name__="test_duration_seconds_count", ` + target + `}`: 2},
		// The exposed job label is kept as exported_job, as a scrape without
		// honor_labels keeps it.
		"test_jobbed": {`{__name__="test_jobbed", exported_job="mine", ` + target + `}`: 0},
		// The series a scrape adds about itself.
		"up":                     {`{__name__="up", ` + target + `}`: 1},
		"scrape_samples_scraped": {`{__name__="scrape_samples_scraped", ` + target + `}`: 9},
	} {
		if got := instant(t, s, expr, t0); !equal(got, want) {
			t.Errorf("%s:\n got  %v\n want %v", expr, got, want)
		}
	}
	if got := instant(t, s, "scrape_duration_seconds", t0); len(got) != 1 {
		t.Errorf("scrape_duration_seconds: %v", got)
	}
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || math.Abs(v-w) > 1e-12 {
			return false
		}
	}
	return true
}

// Samples carry the scrape's time, so rate() works over them; a series the
// next scrape no longer has ends there with a staleness marker, and is gone
// from instant queries at once rather than after the 5m lookback.
func TestScrapeTimesAndStaleness(t *testing.T) {
	f := newFixture()
	f.up.WithLabelValues("a").Set(1)
	f.up.WithLabelValues("b").Set(1)
	s := openStore(t, f.reg, time.Hour)
	for i := range 7 {
		f.requests.Add(10)
		if i == 3 {
			f.up.DeleteLabelValues("b")
		}
		scrape(t, s, t0.Add(time.Duration(i)*10*time.Second))
	}
	// 10 requests every 10s.
	rate := instant(t, s, "rate(test_requests_total[1m])", t0.Add(time.Minute))
	if len(rate) != 1 {
		t.Fatalf("rate: %v", rate)
	}
	for _, v := range rate {
		if math.Abs(v-1) > 1e-9 {
			t.Errorf("rate %v, want 1", v)
		}
	}
	ts := instant(t, s, "timestamp(test_requests_total)", t0.Add(65*time.Second))
	for _, v := range ts {
		if want := float64(t0.Add(time.Minute).Unix()); v != want {
			t.Errorf("timestamp %v, want %v (the last scrape's time)", v, want)
		}
	}
	for at, want := range map[time.Duration][]string{
		25 * time.Second: {"a", "b"},
		35 * time.Second: {"a"}, // b's marker is at t0+30s
		5 * time.Minute:  {"a"},
	} {
		var sources []string
		for k := range instant(t, s, "test_source_up", t0.Add(at)) {
			sources = append(sources, k[strings.Index(k, `source="`)+8:][:1])
		}
		slices.Sort(sources)
		if !slices.Equal(sources, want) {
			t.Errorf("at t0+%s: sources %v, want %v", at, sources, want)
		}
	}
}

// Samples older than the retention are dropped as the head drops them:
// a series that ended before it is gone.
func TestRetention(t *testing.T) {
	f := newFixture()
	f.up.WithLabelValues("gone").Set(1)
	s := openStore(t, f.reg, time.Hour)
	scrape(t, s, t0)
	f.up.DeleteLabelValues("gone")
	scrape(t, s, t0.Add(10*time.Second))
	if got := labelValues(t, s, "source"); !slices.Equal(got, []string{"gone"}) {
		t.Fatalf("before: %v", got)
	}
	scrape(t, s, t0.Add(3*time.Hour))
	if got := labelValues(t, s, "source"); len(got) != 0 {
		t.Errorf("after the retention: %v", got)
	}
	if mint := s.MinTime(); mint < t0.Add(2*time.Hour).UnixMilli() {
		t.Errorf("oldest sample %v", time.UnixMilli(mint).UTC())
	}
}

func labelValues(t *testing.T, s *Store, name string) []string {
	t.Helper()
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	vals, _, err := q.LabelValues(t.Context(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return vals
}

// Run scrapes at once, then every interval; when it returns the store is
// empty and its directory is gone, and a querier opened before still reads.
func TestRun(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // where os.MkdirTemp makes the head's directory
	f := newFixture()
	s := New(f.reg, Options{Interval: 20 * time.Millisecond, Retention: time.Hour, Job: "j", Instance: "i"})
	if got := labelValues(t, s, "__name__"); len(got) != 0 {
		t.Fatalf("before Run: %v", got)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	deadline := time.Now().Add(10 * time.Second)
	for len(samplesOf(t, s)) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no three scrapes within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if dirs, _ := os.ReadDir(tmp); len(dirs) != 1 || !strings.HasPrefix(dirs[0].Name(), "telemetry-aggregator-self-metrics-") {
		t.Errorf("storage directories while running: %v", dirs)
	}
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	// A querier opened before the end still reads.
	names, _, err := q.LabelNames(t.Context(), nil)
	if err != nil || !slices.Contains(names, "job") {
		t.Errorf("open querier during shutdown: %v %v", names, err)
	}
	q.Close()
	wg.Wait()
	if got := labelValues(t, s, "__name__"); len(got) != 0 {
		t.Errorf("after Run: %v", got)
	}
	if dirs, _ := os.ReadDir(tmp); len(dirs) != 0 {
		t.Errorf("left behind: %v", dirs)
	}
}

// samplesOf returns the values of up in the store: one per scrape.
func samplesOf(t *testing.T, s *Store) []float64 {
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	var out []float64
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			out = append(out, v)
		}
	}
	return out
}

func TestInstance(t *testing.T) {
	host, _ := os.Hostname()
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		"agg.example:80": "agg.example:80",
		":8080":          net.JoinHostPort(host, "8080"),
		"0.0.0.0:8080":   net.JoinHostPort(host, "8080"),
		"[::]:8080":      net.JoinHostPort(host, "8080"),
		"[::1]:9":        "[::1]:9",
		"":               host,
		"not an address": "not an address",
	} {
		if got := Instance(in); got != want {
			t.Errorf("Instance(%q) = %q, want %q", in, got, want)
		}
	}
}
