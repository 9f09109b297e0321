package history

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// simSnapshots parses n polls of the simulator's /counters, 10s apart from
// start, as the aggregator would.
func simSnapshots(tb testing.TB, cfg simulator.Config, start time.Time, n int) []*snapshot.Snapshot {
	tb.Helper()
	sim, err := simulator.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	p := ingest.NewParser(schema.Default())
	out := make([]*snapshot.Snapshot, 0, n)
	for k := range n {
		at := start.Add(time.Duration(k) * step)
		sim.Tick(at)
		s, err := p.Parse(sim.Body(), at)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// simT0 is when simulated histories start: the parser wants positive times.
var simT0 = time.Unix(1_800_000_000, 0).UTC()

// mixedSnapshots is a history that exercises every encoding and every
// layout change: a simulated fabric with frequent incidents (switches
// dropping out and coming back, reboots resetting counters), then
// hand-made snapshots with NaN, negative zero, long floats, empty cells, a
// joining switch and an extra column, then the simulator again.
func mixedSnapshots(tb testing.TB) []*snapshot.Snapshot {
	cfg := simulator.Config{Switches: 12, Seed: 7, IncidentRate: 0.05}
	snaps := simSnapshots(tb, cfg, simT0, 40)
	odd := []float64{math.NaN(), math.Copysign(0, -1), math.Pi, 1e300, 0.1, 2.5}
	for k := 40; k < 52; k++ {
		at := simT0.Add(time.Duration(k) * step)
		cols := historytest.Columns()
		if k >= 46 {
			cols = append(historytest.Columns(), "Fan_Speed_RPM")
		}
		rows := []historytest.Switch{
			{ID: "SW-01", Values: map[string]float64{"Tx_Bytes": float64(1000 * k), "Temperature_C": odd[k%len(odd)], "Latency_Avg_uSec": float64(k) / 8, "Fan_Speed_RPM": 9000}},
			{ID: "SW-02", Values: map[string]float64{"Tx_Bytes": 77, "Latency_Avg_uSec": 3.25}},
		}
		if k%4 != 1 {
			rows = append(rows, historytest.Switch{ID: "SW-03", Values: map[string]float64{"Tx_Bytes": float64(1<<53) + float64(k*4096), "Temperature_C": 40 + float64(k%5)/100}})
		}
		if k >= 43 {
			rows = append(rows, historytest.Switch{ID: "SW-04", Values: map[string]float64{"Tx_Bytes": float64(k * k), "Temperature_C": math.NaN()}})
		}
		snaps = append(snaps, historytest.Switches(tb, at, cols, rows...))
	}
	return append(snaps, simSnapshots(tb, cfg, simT0.Add(52*step), 28)...)
}

// Queries over a history whose old blocks are encoded give exactly what
// they give over plain blocks: every sample's bits, staleness markers at
// every layout change and gap, seeks, label lookups and PromQL, checked as
// the history grows (so runs are pending, done, and partly past the
// retention).
func TestCompressedSameAsPlain(t *testing.T) {
	snaps := mixedSnapshots(t)
	retention := 8 * time.Minute
	for _, c := range []Compression{
		{RunBlocks: 6, Spread: 2, MinRun: 3, MinBatch: 1},
		{RunBlocks: 11, Spread: 1, MinRun: 1, MinBatch: 1},
		DefaultCompression,
	} {
		t.Run(fmt.Sprintf("run%d-spread%d", c.RunBlocks, c.Spread), func(t *testing.T) {
			plain := New(retention).WithCompression(Compression{})
			enc := New(retention).WithCompression(c)
			for k, s := range snaps {
				plain.Append(s)
				enc.Append(s)
				if k%9 == 8 || k == len(snaps)-1 {
					compareHistories(t, plain, enc, k)
				}
			}
			st := enc.Load().Stats()
			if st.EncodedSamples == 0 || st.Runs < 2 && c.RunBlocks < 30 {
				t.Errorf("little was encoded: %+v", st)
			}
		})
	}
}

// The runs of the mixed history use every kind of encoding.
func TestCompressedKinds(t *testing.T) {
	h := New(time.Hour).WithCompression(Compression{RunBlocks: 6, Spread: 1, MinRun: 1, MinBatch: 1})
	kinds := map[byte]int{}
	for _, s := range mixedSnapshots(t) {
		h.Append(s)
	}
	var last *encoded
	for _, b := range h.Load().blocks {
		if b.enc == nil || b.enc == last {
			continue
		}
		last = b.enc
		for id := range b.lay.numSeries() {
			kinds[b.enc.series(int32(id))[0]&kindMask]++
		}
	}
	for _, k := range []byte{kindAbsent, kindConst, kindConstRaw, kindInt, kindXOR, kindIntLate} {
		if kinds[k] == 0 {
			t.Errorf("no series of kind %d: %v", k, kinds)
		}
	}
}

func compareHistories(t *testing.T, plain, enc *History, k int) {
	t.Helper()
	pv, ev := plain.Load(), enc.Load()
	if !slices.Equal(pv.Times(), ev.Times()) {
		t.Fatalf("after %d appends: times differ", k+1)
	}
	times := pv.Times()
	first, last := times[0], times[len(times)-1]
	all := labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")
	ranges := [][2]time.Time{
		{first, last},
		{first.Add(-time.Hour), last.Add(time.Hour)},
		{first.Add(25 * time.Second), last.Add(-35 * time.Second)},
		{last.Add(-2 * time.Minute), last},
		{first.Add(time.Minute), first.Add(time.Minute)},
	}
	for _, r := range ranges {
		mint, maxt := r[0].UnixMilli(), r[1].UnixMilli()
		want := selectSamples(t, plain.Queryable(), mint, maxt, all)
		got := selectSamples(t, enc.Queryable(), mint, maxt, all)
		if len(got) != len(want) {
			t.Fatalf("after %d appends, %v: %d series, want %d", k+1, r, len(got), len(want))
		}
		for name, w := range want {
			if !sameSamples(got[name], w) {
				t.Fatalf("after %d appends, %v, %s:\n got  %v\n want %v", k+1, r, name, got[name], w)
			}
		}
		compareLabelLookups(t, plain.Queryable(), enc.Queryable(), mint, maxt, k)
	}
	compareSeeks(t, plain.Queryable(), enc.Queryable(), first, last, k)

	engine := newEngine()
	queries := []string{
		`{__name__=~".+"}`,
		"rate(fabric_switch_transmit_bytes_total[1m])",
		"irate(fabric_switch_receive_packets_total[30s])",
		"resets(fabric_switch_transmit_bytes_total[5m])",
		"changes(fabric_switch_temperature_celsius[2m])",
		"count_over_time(fabric_switch_temperature_celsius[1m])",
		`count by (__name__) ({__name__=~"fabric_switch_.*"})`,
		"timestamp(fabric_switch_latency_average_seconds)",
		"last_over_time(fabric_switch_temperature_celsius[3m])",
		"max_over_time(rate(fabric_switch_transmit_bytes_total[30s])[2m:10s])",
		"sum by (switch_id) (fabric_switch_fan_speed_rpm)",
	}
	for _, qs := range queries {
		for at := first.Add(-time.Minute); !at.After(last.Add(6 * time.Minute)); at = at.Add(53 * time.Second) {
			want := instantAt(t, engine, plain.Queryable(), qs, at)
			got := instantAt(t, engine, enc.Queryable(), qs, at)
			if !identicalVectors(got, want) {
				t.Fatalf("after %d appends, %s at %s:\n got  %v\n want %v", k+1, qs, at, got, want)
			}
		}
		want := rangeAt(t, engine, plain.Queryable(), qs, first, last.Add(time.Minute), 7*time.Second)
		got := rangeAt(t, engine, enc.Queryable(), qs, first, last.Add(time.Minute), 7*time.Second)
		if !identicalMatrices(got, want) {
			t.Fatalf("after %d appends, %s over the history differs", k+1, qs)
		}
	}
}

func compareLabelLookups(t *testing.T, plain, enc storage.Queryable, mint, maxt int64, k int) {
	t.Helper()
	pq, _ := plain.Querier(mint, maxt)
	eq, _ := enc.Querier(mint, maxt)
	ctx := context.Background()
	for _, ms := range [][]*labels.Matcher{
		nil,
		{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_fan_speed_rpm")},
		{labels.MustNewMatcher(labels.MatchRegexp, "switch_id", "SW-0[0-4]")},
	} {
		for _, name := range []string{model.MetricNameLabel, "switch_id"} {
			want, _, _ := pq.LabelValues(ctx, name, nil, ms...)
			got, _, _ := eq.LabelValues(ctx, name, nil, ms...)
			if !slices.Equal(got, want) {
				t.Fatalf("after %d appends: LabelValues(%s, %v) = %v, want %v", k+1, name, ms, got, want)
			}
		}
		want, _, _ := pq.LabelNames(ctx, nil, ms...)
		got, _, _ := eq.LabelNames(ctx, nil, ms...)
		if !slices.Equal(got, want) {
			t.Fatalf("after %d appends: LabelNames(%v) = %v, want %v", k+1, ms, got, want)
		}
	}
}

// compareSeeks seeks every series forward in uneven steps, as the engine
// does, and compares where each lands.
func compareSeeks(t *testing.T, plain, enc storage.Queryable, first, last time.Time, k int) {
	t.Helper()
	all := labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")
	open := func(q storage.Queryable) storage.SeriesSet {
		qr, _ := q.Querier(first.UnixMilli(), last.UnixMilli())
		return qr.Select(context.Background(), true, nil, all)
	}
	ps, es := open(plain), open(enc)
	var pit, eit chunkenc.Iterator
	for ps.Next() {
		if !es.Next() {
			t.Fatal("fewer series encoded")
		}
		pit, eit = ps.At().Iterator(pit), es.At().Iterator(eit)
		for at, i := first.Add(-time.Second), 0; !at.After(last.Add(step)); i++ {
			pt, et := pit.Seek(at.UnixMilli()), eit.Seek(at.UnixMilli())
			if pt != et {
				t.Fatalf("after %d appends, %s: seek %s: %v, want %v", k+1, ps.At().Labels(), at, et, pt)
			}
			if pt == chunkenc.ValFloat {
				t1, v1 := pit.At()
				t2, v2 := eit.At()
				if t1 != t2 || math.Float64bits(v1) != math.Float64bits(v2) {
					t.Fatalf("after %d appends, %s: seek %s: (%d, %v), want (%d, %v)", k+1, ps.At().Labels(), at, t2, v2, t1, v1)
				}
			}
			at = at.Add(time.Duration(3+i%5*11) * time.Second)
		}
	}
	if es.Next() {
		t.Fatal("more series encoded")
	}
}

func instantAt(t *testing.T, ng *promql.Engine, q storage.Queryable, qs string, at time.Time) promql.Vector {
	t.Helper()
	return evalInstant(t, ng, q, qs, at.Sub(t0))
}

func rangeAt(t *testing.T, ng *promql.Engine, q storage.Queryable, qs string, start, end time.Time, step time.Duration) promql.Matrix {
	t.Helper()
	return evalRangeOver(t, ng, q, qs, start.Sub(t0), end.Sub(t0), step)
}

func identicalVectors(a, b promql.Vector) bool {
	return slices.EqualFunc(a, b, func(x, y promql.Sample) bool {
		return labels.Equal(x.Metric, y.Metric) && x.T == y.T && math.Float64bits(x.F) == math.Float64bits(y.F)
	})
}

func identicalMatrices(a, b promql.Matrix) bool {
	return slices.EqualFunc(a, b, func(x, y promql.Series) bool {
		return labels.Equal(x.Metric, y.Metric) && slices.EqualFunc(x.Floats, y.Floats, func(p, q promql.FPoint) bool {
			return p.T == q.T && math.Float64bits(p.F) == math.Float64bits(q.F)
		})
	})
}

// Snapshots without metric columns have layouts without series; their runs
// are empty and the next run is sized from a real one.
func TestCompressWithoutSeries(t *testing.T) {
	h := New(time.Hour).WithCompression(Compression{RunBlocks: 2, Spread: 1, MinRun: 1, MinBatch: 1})
	for k := range 8 {
		cols := historytest.Columns()
		if k < 4 {
			cols = nil
		}
		h.Append(historytest.Switches(t, t0.Add(time.Duration(k)*step), cols, historytest.Switch{ID: "SW-01", Values: map[string]float64{"Tx_Bytes": float64(k)}}))
	}
	got := selectSamples(t, h.Queryable(), ms(0), ms(time.Hour), labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_transmit_bytes_total"))
	want := []sample{{ms(4 * step), 4}, {ms(5 * step), 5}, {ms(6 * step), 6}, {ms(7 * step), 7}}
	if s := got[`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-01"}`]; !sameSamples(s, want) || len(got) != 1 {
		t.Errorf("got %v", got)
	}
	if st := h.Load().Stats(); st.Runs < 2 {
		t.Errorf("%+v", st)
	}
}
