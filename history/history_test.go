package history

import (
	"context"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

type sample struct {
	t int64
	v float64
}

// selectSamples returns every series matching ms in [mint, maxt] with its
// samples, staleness markers as value.StaleNaN.
func selectSamples(t *testing.T, q storage.Queryable, mint, maxt int64, ms ...*labels.Matcher) map[string][]sample {
	t.Helper()
	qr, err := q.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	set := qr.Select(context.Background(), true, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		it = s.Iterator(it)
		var got []sample
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			got = append(got, sample{ts, v})
		}
		out[s.Labels().String()] = got
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func stale() float64 { return math.Float64frombits(value.StaleNaN) }

func sameSamples(a, b []sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].t != b[i].t || math.Float64bits(a[i].v) != math.Float64bits(b[i].v) {
			return false
		}
	}
	return true
}

func TestSamplesStalenessAndScale(t *testing.T) {
	h := fixtureHistory(t)
	got := selectSamples(t, h.Queryable(), ms(0), ms(time.Hour),
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, "fabric_switch_(transmit_bytes_total|temperature_celsius|latency_average_seconds)"))
	const lat = 2.5e-6
	want := map[string][]sample{
		`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-01"}`: {{ms(0), 1000}, {ms(10 * time.Second), 1500}, {ms(20 * time.Second), 2000}, {ms(30 * time.Second), 2500}, {ms(40 * time.Second), 3000}, {ms(50 * time.Second), 3500}},
		`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-02"}`: {{ms(0), 100}, {ms(10 * time.Second), 400}, {ms(20 * time.Second), 700}, {ms(30 * time.Second), 50}, {ms(40 * time.Second), 350}, {ms(50 * time.Second), 650}},
		// Missing at k=2 and 3: one marker at the first gap, then back.
		`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-03"}`: {{ms(0), 2000}, {ms(10 * time.Second), 2100}, {ms(20 * time.Second), stale()}, {ms(40 * time.Second), 2400}, {ms(50 * time.Second), 2500}},
		// An empty cell ends the series like a missing row.
		`{__name__="fabric_switch_temperature_celsius", switch_id="SW-02"}`: {{ms(0), 55}, {ms(10 * time.Second), 55}, {ms(20 * time.Second), 55}, {ms(30 * time.Second), 55}, {ms(40 * time.Second), stale()}, {ms(50 * time.Second), 55}},
		// Scaled as /metrics exports it: 2.5 µs is the decimal 2.5e-6 s,
		// where the float product 2.5 × 1e-6 is one ulp off.
		`{__name__="fabric_switch_latency_average_seconds", switch_id="SW-01"}`: {{ms(0), lat}, {ms(10 * time.Second), lat}, {ms(20 * time.Second), lat}, {ms(30 * time.Second), lat}, {ms(40 * time.Second), lat}, {ms(50 * time.Second), lat}},
	}
	if len(got) != 9 {
		t.Errorf("got %d series, want 9: %v", len(got), got)
	}
	for name, w := range want {
		if !sameSamples(got[name], w) {
			t.Errorf("%s:\n got  %v\n want %v", name, got[name], w)
		}
	}
}

func TestSeekKeepsStalenessMarker(t *testing.T) {
	h := fixtureHistory(t)
	q, _ := h.Queryable().Querier(ms(0), ms(time.Hour))
	set := q.Select(context.Background(), false, nil,
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_transmit_bytes_total"),
		labels.MustNewMatcher(labels.MatchEqual, "switch_id", "SW-03"))
	if !set.Next() {
		t.Fatal("SW-03 not selected")
	}
	for _, tc := range []struct {
		seek  time.Duration
		wantT time.Duration
		stale bool
	}{
		{15 * time.Second, 20 * time.Second, true},  // lands on the gap: the marker
		{21 * time.Second, 40 * time.Second, false}, // past the marker: the return
		{55 * time.Second, -1, false},
	} {
		it := set.At().Iterator(nil)
		typ := it.Seek(ms(tc.seek))
		if tc.wantT < 0 {
			if typ != chunkenc.ValNone {
				t.Errorf("seek %s: got a sample, want none", tc.seek)
			}
			continue
		}
		ts, v := it.At()
		if typ != chunkenc.ValFloat || ts != ms(tc.wantT) || value.IsStaleNaN(v) != tc.stale {
			t.Errorf("seek %s: got %v (%d, %v), want t=%s stale=%v", tc.seek, typ, ts, v, tc.wantT, tc.stale)
		}
		// Seeking backwards does not move.
		if it.Seek(ms(0)) != chunkenc.ValFloat || it.AtT() != ms(tc.wantT) {
			t.Errorf("seek back from %s moved to %d", tc.wantT, it.AtT())
		}
	}
}

func TestLayoutShared(t *testing.T) {
	h := fixtureHistory(t)
	v := h.Load()
	lay := func(k int) *layout { return v.blocks[k].lay }
	// k=0,1 have three switches, k=2,3 two of them, k=4,5 three again: one
	// layout, with SW-03's cells absent at k=2,3.
	for k := 1; k < 6; k++ {
		if lay(k) != lay(0) {
			t.Errorf("snapshot %d has its own layout", k)
		}
	}
}

// A switch that joins needs a new layout; a query across both merges the
// series by labels.
func TestSwitchJoins(t *testing.T) {
	h := New(time.Hour)
	row := func(id string, v float64) historytest.Switch {
		return historytest.Switch{ID: id, Values: map[string]float64{"Tx_Bytes": v}}
	}
	h.Append(historytest.Switches(t, t0, historytest.Columns(), row("SW-01", 1)))
	h.Append(historytest.Switches(t, t0.Add(step), historytest.Columns(), row("SW-01", 2), row("SW-02", 20)))
	h.Append(historytest.Switches(t, t0.Add(2*step), historytest.Columns(), row("SW-02", 30)))
	if v := h.Load(); v.blocks[0].lay == v.blocks[1].lay || v.blocks[1].lay != v.blocks[2].lay {
		t.Error("want a new layout when SW-02 joins, kept when SW-01 leaves")
	}
	got := selectSamples(t, h.Queryable(), ms(0), ms(time.Hour), labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_transmit_bytes_total"))
	want := map[string][]sample{
		`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-01"}`: {{ms(0), 1}, {ms(step), 2}, {ms(2 * step), stale()}},
		`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-02"}`: {{ms(step), 20}, {ms(2 * step), 30}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, w := range want {
		if !sameSamples(got[k], w) {
			t.Errorf("%s: got %v, want %v", k, got[k], w)
		}
	}
}

// A fabric that shrinks to less than half gets a layout of its own.
func TestShrunkFabricNewLayout(t *testing.T) {
	h := New(time.Hour)
	h.Append(historytest.Fixture(t, 0))
	h.Append(historytest.Switches(t, t0.Add(step), historytest.Columns(), historytest.Switch{ID: "SW-01", Values: map[string]float64{"Tx_Bytes": 1}}))
	if v := h.Load(); v.blocks[0].lay == v.blocks[1].lay {
		t.Error("one switch of three kept the three-switch layout")
	}
}

func TestRetentionEdge(t *testing.T) {
	h := historytest.FixtureHistory(t, New(30*time.Second))
	// Newest is t0+50s: t0+20s is exactly at the edge and is kept.
	times := h.Load().Times()
	if len(times) != 4 || !times[0].Equal(t0.Add(20*time.Second)) {
		t.Fatalf("kept %v, want t0+20s..t0+50s", times)
	}
	got := selectSamples(t, h.Queryable(), ms(0), ms(time.Hour),
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_transmit_bytes_total"),
		labels.MustNewMatcher(labels.MatchEqual, "switch_id", "SW-01"))
	want := []sample{{ms(20 * time.Second), 2000}, {ms(30 * time.Second), 2500}, {ms(40 * time.Second), 3000}, {ms(50 * time.Second), 3500}}
	if s := got[`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-01"}`]; !sameSamples(s, want) {
		t.Errorf("got %v, want %v", s, want)
	}
}

func TestAppendOutOfOrder(t *testing.T) {
	h := New(time.Hour)
	h.Append(historytest.Fixture(t, 1))
	h.Append(historytest.Fixture(t, 0)) // older: rewinds
	if times := h.Load().Times(); len(times) != 1 || !times[0].Equal(t0) || h.Dropped(Rewound) != 1 {
		t.Fatalf("times %v rewound %d, want [t0] and 1", times, h.Dropped(Rewound))
	}
	// Same time: the newer snapshot replaces the block.
	s := historytest.Switches(t, t0, historytest.Columns(), historytest.Switch{ID: "SW-09", Values: map[string]float64{"Tx_Bytes": 7}})
	h.Append(s)
	got := selectSamples(t, h.Queryable(), ms(0), ms(time.Hour), labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_transmit_bytes_total"))
	if len(got) != 1 || !sameSamples(got[`{__name__="fabric_switch_transmit_bytes_total", switch_id="SW-09"}`], []sample{{ms(0), 7}}) {
		t.Errorf("after replacing: %v", got)
	}
	if h.Dropped(Rewound) != 1 || h.Streak().Appends != 0 {
		t.Errorf("replacing counted as a drop: rewound %d, streak %+v", h.Dropped(Rewound), h.Streak())
	}
}

// A view loaded before appends stays as it was.
func TestViewIsImmutable(t *testing.T) {
	h := New(20 * time.Second)
	h.Append(historytest.Fixture(t, 0))
	h.Append(historytest.Fixture(t, 1))
	v := h.Load()
	for k := 2; k < 6; k++ {
		h.Append(historytest.Fixture(t, k))
	}
	if got := v.Times(); len(got) != 2 || !got[1].Equal(t0.Add(step)) {
		t.Errorf("old view changed: %v", got)
	}
}

func TestLabelNamesAndValues(t *testing.T) {
	h := fixtureHistory(t)
	ctx := context.Background()
	q, _ := h.Queryable().Querier(ms(20*time.Second), ms(30*time.Second))
	names, _, _ := q.LabelNames(ctx, nil)
	if want := []string{"__name__", "switch_id"}; !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	// Only SW-01 and SW-02 report in [t0+20s, t0+30s].
	ids, _, _ := q.LabelValues(ctx, "switch_id", nil)
	if want := []string{"SW-01", "SW-02"}; !slices.Equal(ids, want) {
		t.Errorf("values %v, want %v", ids, want)
	}
	q, _ = h.Queryable().Querier(ms(0), ms(time.Hour))
	ids, _, _ = q.LabelValues(ctx, "switch_id", nil, labels.MustNewMatcher(labels.MatchRegexp, "switch_id", "SW-0[23]"))
	if want := []string{"SW-02", "SW-03"}; !slices.Equal(ids, want) {
		t.Errorf("values with matcher %v, want %v", ids, want)
	}
}

// A selector that matches every series of a large fabric costs little until
// its series are read: the engine's series limit (--query.max-series) stops
// reading early, so the labels of the series it never reads must not have
// been built. Reading ten of 50,000 series allocates far less than the
// labels of all of them (about 150 bytes each).
func TestSelectBuildsSeriesAsRead(t *testing.T) {
	const switches = 50_000
	h := New(time.Hour)
	historytest.AppendBenchFabric(t, h, switches, 1, []string{"Tx_Bytes"})
	q, err := h.Queryable().Querier(0, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	m := labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "fabric_switch_transmit_bytes_total")
	var read []labels.Labels
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	set := q.Select(t.Context(), true, &storage.SelectHints{Start: 0, End: math.MaxInt64, Func: "rate"}, m)
	for len(read) < 10 && set.Next() {
		read = append(read, set.At().Labels())
	}
	runtime.ReadMemStats(&after)
	if len(read) != 10 || read[0].Get(snapshot.SwitchLabel) != "SW-000001" {
		t.Fatalf("read %v", read)
	}
	if bytes := after.TotalAlloc - before.TotalAlloc; bytes > switches*50 {
		t.Errorf("reading 10 of %d series allocated %d bytes: the others' labels were built", switches, bytes)
	}
}
