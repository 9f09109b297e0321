package history

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// Every query runs twice with the same engine: over Prometheus's own test
// storage loaded with the fixture as a promqltest script (stale markers where
// a switch went missing), and over the history. The answers must agree at
// every evaluation time, so staleness, lookback and extrapolation behave as
// in Prometheus. The history is plain, then with its old blocks encoded in
// runs of one, two and four snapshots.
func TestSameAsPrometheus(t *testing.T) {
	prom := promqltest.LoadedStorage(t, historytest.FixturePromQL)
	engine := newEngine()
	queries := []string{
		"fabric_switch_transmit_bytes_total",
		"fabric_switch_temperature_celsius",
		`fabric_switch_latency_average_seconds{switch_id=~"SW-0[12]"}`,
		`{__name__=~"fabric_switch_.*", switch_id!="SW-01"}`,
		"rate(fabric_switch_transmit_bytes_total[1m])",
		"increase(fabric_switch_transmit_bytes_total[30s])",
		"irate(fabric_switch_transmit_bytes_total[1m])",
		"resets(fabric_switch_transmit_bytes_total[1m])",
		"sum by (switch_id) (rate(fabric_switch_transmit_bytes_total[20s]))",
		"topk(2, rate(fabric_switch_transmit_bytes_total[1m]))",
		"avg_over_time(fabric_switch_temperature_celsius[30s])",
		"count_over_time(fabric_switch_temperature_celsius[1m])",
		"last_over_time(fabric_switch_transmit_bytes_total[1m])",
		"fabric_switch_temperature_celsius > 50",
		"absent(fabric_switch_transmit_bytes_total{switch_id=\"SW-03\"})",
		"max_over_time(rate(fabric_switch_transmit_bytes_total[20s])[1m:10s])",
		"fabric_switch_transmit_bytes_total offset 10s",
		"timestamp(fabric_switch_transmit_bytes_total)",
	}
	for _, runBlocks := range []int{0, 1, 2, 4} {
		h := historytest.FixtureHistory(t, New(time.Hour).WithCompression(Compression{RunBlocks: runBlocks, Spread: 1, MinRun: 1, MinBatch: 1}))
		if st := h.Load().Stats(); (st.EncodedSamples > 0) != (runBlocks > 0) {
			t.Fatalf("runs of %d: %+v", runBlocks, st)
		}
		ours := h.Queryable()
		for _, qs := range queries {
			for at := time.Duration(0); at <= 70*time.Second; at += 5 * time.Second {
				want := evalInstant(t, engine, prom, qs, at)
				got := evalInstant(t, engine, ours, qs, at)
				if !sameVector(got, want) {
					t.Errorf("runs of %d: %s at t0+%s:\n got  %v\n want %v", runBlocks, qs, at, got, want)
				}
			}
			want := evalRange(t, engine, prom, qs)
			got := evalRange(t, engine, ours, qs)
			if !sameMatrix(got, want) {
				t.Errorf("runs of %d: %s over t0..t0+70s:\n got  %v\n want %v", runBlocks, qs, got, want)
			}
		}
	}
}

// newEngine is the engine queryapi.New builds, with the same options (at
// queryapi's defaults) and without its concurrency gate, so that these
// tests check the answers the API gives.
func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:               50_000_000,
		Timeout:                  2 * time.Minute,
		LookbackDelta:            5 * time.Minute,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
	})
}

func evalInstant(t *testing.T, ng *promql.Engine, q storage.Queryable, qs string, at time.Duration) promql.Vector {
	t.Helper()
	qry, err := ng.NewInstantQuery(t.Context(), q, nil, qs, t0.Add(at))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(t.Context())
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	v = slices.Clone(v)
	slices.SortFunc(v, func(a, b promql.Sample) int { return labels.Compare(a.Metric, b.Metric) })
	return v
}

func evalRange(t *testing.T, ng *promql.Engine, q storage.Queryable, qs string) promql.Matrix {
	t.Helper()
	return evalRangeOver(t, ng, q, qs, 0, 70*time.Second, 5*time.Second)
}

func evalRangeOver(t *testing.T, ng *promql.Engine, q storage.Queryable, qs string, start, end, step time.Duration) promql.Matrix {
	t.Helper()
	qry, err := ng.NewRangeQuery(t.Context(), q, nil, qs, t0.Add(start), t0.Add(end), step)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	m, err := qry.Exec(t.Context()).Matrix()
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats)}
	}
	slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out
}

// sameFloat is bit equality, NaN included: the fixture's scaled latency
// (2.5 µs) is the script's decimal 0.0000025 exactly.
func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func sameVector(a, b promql.Vector) bool {
	return slices.EqualFunc(a, b, func(x, y promql.Sample) bool {
		return labels.Equal(x.Metric, y.Metric) && x.T == y.T && sameFloat(x.F, y.F)
	})
}

func sameMatrix(a, b promql.Matrix) bool {
	return slices.EqualFunc(a, b, func(x, y promql.Series) bool {
		return labels.Equal(x.Metric, y.Metric) && slices.EqualFunc(x.Floats, y.Floats, func(p, q promql.FPoint) bool {
			return p.T == q.T && sameFloat(p.F, q.F)
		})
	})
}
