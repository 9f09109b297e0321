package queryapi

import (
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

func near(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func checkVector(t *testing.T, query string, got, want map[string]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %v, want %v", query, got, want)
		return
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || !near(g, w) {
			t.Errorf("%s: %s = %v, want %v (all: %v)", query, k, g, w, got)
		}
	}
}

// Expected values are worked out by hand from the fixture (historytest.Fixture).
func TestInstantQueries(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	const now = 50 * time.Second
	for _, tc := range []struct {
		query string
		at    time.Duration
		want  map[string]float64
	}{
		{"fabric_switch_transmit_bytes_total", now, map[string]float64{"SW-01": 3500, "SW-02": 650, "SW-03": 2500}},
		{`fabric_switch_transmit_bytes_total{switch_id="SW-02"}`, now, map[string]float64{"SW-02": 650}},
		{`fabric_switch_transmit_bytes_total{switch_id=~"SW-0[13]"}`, now, map[string]float64{"SW-01": 3500, "SW-03": 2500}},
		{`fabric_switch_transmit_bytes_total{switch_id!="SW-01"}`, now, map[string]float64{"SW-02": 650, "SW-03": 2500}},
		{`{__name__=~"fabric_switch_t.*", switch_id="SW-03"}`, now, nil}, // two names: checked below by count
		{`sum by (switch_id) (fabric_switch_transmit_bytes_total + fabric_switch_temperature_celsius)`, now,
			map[string]float64{"SW-01": 3500 + 45, "SW-02": 650 + 55, "SW-03": 2500 + 70}},
		{`topk(2, fabric_switch_transmit_bytes_total)`, now, map[string]float64{"SW-01": 3500, "SW-03": 2500}},
		{`fabric_switch_transmit_bytes_total * 8 / 1000`, now, map[string]float64{"SW-01": 28, "SW-02": 5.2, "SW-03": 20}},
		{`fabric_switch_temperature_celsius > 50`, now, map[string]float64{"SW-02": 55, "SW-03": 70}},
		{`fabric_switch_temperature_celsius > bool 50`, now, map[string]float64{"SW-01": 0, "SW-02": 1, "SW-03": 1}},
		// 2.5, 10 and 4 µs exported in seconds.
		{`fabric_switch_latency_average_seconds * 1e6`, now, map[string]float64{"SW-01": 2.5, "SW-02": 10, "SW-03": 4}},
		// Vanished at k=2 (t0+20s) and k=3: gone at once, not after 5 minutes.
		{"fabric_switch_transmit_bytes_total", 20 * time.Second, map[string]float64{"SW-01": 2000, "SW-02": 700}},
		{"fabric_switch_transmit_bytes_total", 35 * time.Second, map[string]float64{"SW-01": 2500, "SW-02": 50}},
		// Back at k=4.
		{"fabric_switch_transmit_bytes_total", 40 * time.Second, map[string]float64{"SW-01": 3000, "SW-02": 350, "SW-03": 2400}},
		// An empty cell: SW-02's temperature is missing at k=4 only.
		{"fabric_switch_temperature_celsius", 45 * time.Second, map[string]float64{"SW-01": 44, "SW-03": 70}},
		// Between snapshots the last sample holds (lookback), as in Prometheus.
		{"fabric_switch_temperature_celsius", 59 * time.Second, map[string]float64{"SW-01": 45, "SW-02": 55, "SW-03": 70}},
		{`count(fabric_switch_transmit_bytes_total)`, now, map[string]float64{"{}": 3}},
		{`fabric_switch_transmit_bytes_total @ 10 offset -10s`, now, map[string]float64{"SW-01": 2000, "SW-02": 700}},
	} {
		got := a.instant(t, tc.query, tc.at)
		if tc.want == nil {
			if len(got) != 0 && len(got) != 1 {
				t.Errorf("%s: %v", tc.query, got)
			}
			continue
		}
		checkVector(t, tc.query, got, tc.want)
	}
}

func TestNameRegexSelectsSeveralMetrics(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	data := a.ok(t, "/api/v1/query", "query", `{__name__=~"fabric_switch_t.*", switch_id="SW-03"}`)
	got := decode[[]vectorSample](t, decode[queryResult](t, data).Result)
	names := map[string]bool{}
	for _, s := range got {
		names[s.Metric["__name__"]] = true
	}
	if len(got) != 2 || !names["fabric_switch_transmit_bytes_total"] || !names["fabric_switch_temperature_celsius"] {
		t.Errorf("got %v", got)
	}
}

// Grafana's "Save & test" posts 1+1 as a form and wants a scalar.
func TestScalarByFormPost(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	code, env := a.do(t, t.Context(), http.MethodPost, "/api/v1/query", values("query", "1+1", "time", unix(50*time.Second)))
	res := decode[queryResult](t, success(t, code, env))
	if res.ResultType != "scalar" {
		t.Fatalf("result type %s", res.ResultType)
	}
	if ts, v := point(t, decode[[2]any](t, res.Result)); v != 2 || ts != 50 {
		t.Errorf("got %v at %v, want 2 at 50", v, ts)
	}
	if env.ErrorType != "" || env.Error != "" || env.Warnings != nil {
		t.Errorf("unexpected keys in %+v", env)
	}
}

func TestStringResult(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	res := decode[queryResult](t, a.ok(t, "/api/v1/query", "query", `"fabric"`))
	if res.ResultType != "string" || string(res.Result) != `[50,"fabric"]` {
		t.Errorf("got %s %s", res.ResultType, res.Result)
	}
}

// rate() and increase() over [1m] at t0+50s, by hand. The window
// (t0-10s, t0+50s] holds all six samples, which span 50s; Prometheus
// extrapolates to the window: to its start by up to 1.1 average intervals
// (11s, so the full 10s) unless a counter would reach zero sooner, and to its
// end by 0s (the last sample is at the end).
//
//	SW-01: 1000 → 3500, increase 2500 over 50s; zero would be 20s before the
//	       first sample, so extrapolate 10s: 2500·60/50 = 3000, rate 50/s.
//	SW-02: 100 400 700 | 50 350 650, reset after 700: increase
//	       650 − 100 + 700 = 1250; zero is 50·100/1250 = 4s before the first
//	       sample, so extrapolate 4s: 1250·54/50 = 1350, rate 22.5/s.
//	SW-03: 2000 2100 (gone) 2400 2500: increase 500 over 50s, zero 200s away:
//	       500·60/50 = 600, rate 10/s.
func TestRateAndIncrease(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	checkVector(t, "increase", a.instant(t, "increase(fabric_switch_transmit_bytes_total[1m])", 50*time.Second),
		map[string]float64{"SW-01": 3000, "SW-02": 1350, "SW-03": 600})
	checkVector(t, "rate", a.instant(t, "rate(fabric_switch_transmit_bytes_total[1m])", 50*time.Second),
		map[string]float64{"SW-01": 50, "SW-02": 22.5, "SW-03": 10})
	// resets() sees the reboot.
	checkVector(t, "resets", a.instant(t, "resets(fabric_switch_transmit_bytes_total[1m])", 50*time.Second),
		map[string]float64{"SW-01": 0, "SW-02": 1, "SW-03": 0})
	// topk over rate, the dashboard's query.
	checkVector(t, "topk", a.instant(t, "topk(1, rate(fabric_switch_transmit_bytes_total[1m]))", 50*time.Second),
		map[string]float64{"SW-01": 50})
}

// A range query with rate() over a 20s window every 10s. Each window
// (t-20s, t] holds the samples at t-10s and t; with two samples 10s apart
// Prometheus extrapolates by up to 1.1·10s at the start, i.e. the full 10s
// unless zero is closer: rate = delta·20/10/20 = delta/10.
func TestRangeQueryRate(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	data := a.ok(t, "/api/v1/query_range",
		"query", "rate(fabric_switch_transmit_bytes_total[20s])",
		"start", unix(10*time.Second), "end", unix(50*time.Second), "step", "10s")
	res := decode[queryResult](t, data)
	if res.ResultType != "matrix" {
		t.Fatalf("result type %s", res.ResultType)
	}
	got := map[string]map[float64]float64{}
	for _, s := range decode[[]matrixSeries](t, res.Result) {
		got[s.Metric["switch_id"]] = map[float64]float64{}
		for _, p := range s.Values {
			ts, v := point(t, p)
			got[s.Metric["switch_id"]][ts] = v
		}
	}
	want := map[string]map[float64]float64{
		"SW-01": {10: 50, 20: 50, 30: 50, 40: 50, 50: 50},
		// 100→400: zero is 10·100/300 = 3.3s before, so 300·(10+3.33)/10/20 = 20.
		// At 40s the window holds 50 and 350 only (the reset is before it):
		// zero is 10·50/300 = 1.67s before: 300·11.67/10/20 = 17.5.
		// At 30s it holds 700 and 50, a reset: increase 50, zero at 10·700/50
		// = 140s before, so extrapolate 10s: 50·20/10/20 = 5.
		"SW-02": {10: 20, 20: 30, 30: 5, 40: 17.5, 50: 30},
		// One sample in (0s, 20s] at 20s (2100 at 10s, marker at 20s), none
		// at 30s, one at 40s: rate needs two.
		"SW-03": {10: 10, 50: 10},
	}
	for id, w := range want {
		if len(got[id]) != len(w) {
			t.Errorf("%s: got %v, want %v", id, got[id], w)
			continue
		}
		for ts, v := range w {
			if !near(got[id][ts], v) {
				t.Errorf("%s at %vs: got %v, want %v", id, ts, got[id][ts], v)
			}
		}
	}
}

// A series that vanishes has no points while it is gone, in a range query
// too, and comes back with the same labels.
func TestRangeQueryVanishAndReturn(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	data := a.ok(t, "/api/v1/query_range",
		"query", `fabric_switch_transmit_bytes_total{switch_id="SW-03"}`,
		"start", unix(0), "end", unix(50*time.Second), "step", "5")
	series := decode[[]matrixSeries](t, decode[queryResult](t, data).Result)
	if len(series) != 1 {
		t.Fatalf("got %d series", len(series))
	}
	var got [][2]float64
	for _, p := range series[0].Values {
		ts, v := point(t, p)
		got = append(got, [2]float64{ts, v})
	}
	want := [][2]float64{{0, 2000}, {5, 2000}, {10, 2100}, {15, 2100}, {40, 2400}, {45, 2400}, {50, 2500}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestRetentionEdgeQuery(t *testing.T) {
	a := newTestAPI(t, historytest.FixtureHistory(t, history.New(30*time.Second)), Options{})
	// t0+20s is the oldest snapshot kept: queryable.
	checkVector(t, "edge", a.instant(t, "fabric_switch_transmit_bytes_total", 20*time.Second), map[string]float64{"SW-01": 2000, "SW-02": 700})
	// t0+10s was dropped: nothing, although it is within the lookback.
	checkVector(t, "dropped", a.instant(t, "fabric_switch_transmit_bytes_total", 15*time.Second), map[string]float64{})
	// A rate whose window (t0-10s, t0+50s] reaches past the edge uses what
	// is left: 2000 → 3500 over 30s. The first sample is 30s after the
	// window start, more than 1.1 intervals, so Prometheus extrapolates half
	// an interval (5s): 1500·35/30 = 1750 over 60s.
	checkVector(t, "rate", a.instant(t, "rate(fabric_switch_transmit_bytes_total{switch_id=\"SW-01\"}[1m])", 50*time.Second), map[string]float64{"SW-01": 1750.0 / 60})
}

// The engine returns a nil matrix for a range query of an aggregation over
// nothing; the answer is [], never null, which strict decoders such as the
// compliance tester's client_golang reject.
func TestEmptyResultsAreArrays(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	rng := []string{"start", unix(0), "end", unix(50 * time.Second), "step", "10"}
	for _, tc := range []struct {
		path   string
		params []string
	}{
		{"/api/v1/query_range", append([]string{"query", "sum(nonexistent_metric_name)"}, rng...)},
		{"/api/v1/query_range", append([]string{"query", "stddev(fabric_switch_temperature_celsius > 1000)"}, rng...)},
		{"/api/v1/query_range", append([]string{"query", "nonexistent_metric_name"}, rng...)},
		{"/api/v1/query", []string{"query", "sum(nonexistent_metric_name)"}},
		{"/api/v1/query", []string{"query", "nonexistent_metric_name[1m]"}},
	} {
		res := decode[queryResult](t, a.ok(t, tc.path, tc.params...))
		if string(res.Result) != "[]" {
			t.Errorf("%s %v: result %s, want []", tc.path, tc.params, res.Result)
		}
	}
	for _, tc := range [][]string{
		{"/api/v1/series", "match[]", "nonexistent_metric_name"},
		{"/api/v1/labels", "match[]", "nonexistent_metric_name"},
		{"/api/v1/label/nonexistent/values"},
		{"/api/v1/query_exemplars", "query", "nonexistent_metric_name"},
	} {
		if got := string(a.ok(t, tc[0], tc[1:]...)); got != "[]" {
			t.Errorf("%v: %s, want []", tc, got)
		}
	}
}
