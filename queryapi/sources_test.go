package queryapi

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// row is one row of any layout: its label values (one per label name, ""
// for absent) and its cells by column.
type row struct {
	labels []string
	vals   map[string]float64
}

// buildRows builds a snapshot with any label names, as the parser (then
// WithLabels or MergeSources) would.
func buildRows(t testing.TB, at time.Time, labelNames, cols []string, rows ...row) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder(labelNames, cols, len(rows))
	for _, r := range rows {
		i := b.AddRow(r.labels...)
		for c, name := range cols {
			if v, ok := r.vals[name]; ok {
				if v == math.Trunc(v) && v >= 0 {
					b.Set(i, c, snapshot.UintValue(uint64(v)))
				} else {
					b.Set(i, c, snapshot.FloatValue(v))
				}
			}
		}
	}
	metrics, _ := schema.Default().Resolve(snapshot.Subsystem(labelNames), cols)
	s, err := b.Build(at, metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withFabric(t testing.TB, s *snapshot.Snapshot, fabric string) *snapshot.Snapshot {
	t.Helper()
	l, err := s.WithLabels([]string{"fabric"}, []string{fabric}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The sources of the union tests, one history each:
//
//	east   the fixture fabric (SW-01..03, three columns, SW-03 missing at
//	       k=2,3) with fabric="east"; it stops publishing after k=5 (t0+50s),
//	       a failing source
//	west   SW-01 and SW-04 with fabric="west", and SW-05 whose fabric label
//	       is empty (absent), Tx_Bytes only, k=0..40 (to t0+400s)
//	ports  per-port rows of SW-01 (ports 1 and 2), k=0..40: series whose
//	       names no other source has
const unionPromQL = `
load 10s
  fabric_switch_transmit_bytes_total{fabric="west",switch_id="SW-01"} 0+100x40
  fabric_switch_transmit_bytes_total{fabric="west",switch_id="SW-04"} 5+1x40
  fabric_switch_transmit_bytes_total{switch_id="SW-05"} 7+3x40
  fabric_port_transmit_bytes_total{switch_id="SW-01",port="1"} 0+10x40
  fabric_port_transmit_bytes_total{switch_id="SW-01",port="2"} 0+20x40
`

func unionHistories(t testing.TB) (east, west, ports *History) {
	east, west, ports = NewHistory(time.Hour), NewHistory(time.Hour), NewHistory(time.Hour)
	for k := range 6 {
		east.Append(withFabric(t, fixtureSnapshot(t, k), "east"))
	}
	tx := func(v float64) map[string]float64 { return map[string]float64{"Tx_Bytes": v} }
	for k := range 41 {
		at := t0.Add(time.Duration(k) * step)
		f := float64(k)
		west.Append(buildRows(t, at, []string{snapshot.SwitchLabel, "fabric"}, fixtureColumns,
			row{[]string{"SW-01", "west"}, tx(100 * f)},
			row{[]string{"SW-04", "west"}, tx(5 + f)},
			row{[]string{"SW-05", ""}, tx(7 + 3*f)}))
		ports.Append(buildRows(t, at, []string{snapshot.SwitchLabel, "port"}, []string{"Tx_Bytes"},
			row{[]string{"SW-01", "1"}, tx(10 * f)},
			row{[]string{"SW-01", "2"}, tx(20 * f)}))
	}
	return east, west, ports
}

// The union of the sources' histories answers as Prometheus does over the
// same samples in one storage: series with the same name under different
// fabric labels stay apart, an empty label is no label, and the east source
// that stopped at t0+50s keeps its samples' times, its series fading out
// after the lookback delta (5m) instead of being carried on by the others.
func TestUnionSameAsPrometheus(t *testing.T) {
	east, west, ports := unionHistories(t)
	script := strings.ReplaceAll(fixturePromQL, "{switch_id=", `{fabric="east",switch_id=`) + unionPromQL
	prom := promqltest.LoadedStorage(t, script)
	ours := Union(east, west, ports)
	engine := New(nil, nil, Options{}).engine
	queries := []string{
		"fabric_switch_transmit_bytes_total",
		"sum by (fabric) (fabric_switch_transmit_bytes_total)",
		"sum by (fabric) (rate(fabric_switch_transmit_bytes_total[1m]))",
		"timestamp(fabric_switch_transmit_bytes_total)",
		"count by (fabric) (fabric_switch_temperature_celsius)",
		`fabric_switch_transmit_bytes_total{fabric=""}`,
		`fabric_switch_transmit_bytes_total{fabric!="east"}`,
		`{__name__=~"fabric_.*", switch_id="SW-01"}`,
		"last_over_time(fabric_switch_transmit_bytes_total[10m])",
		"sum by (switch_id) (fabric_port_transmit_bytes_total)",
		"fabric_port_transmit_bytes_total / on (switch_id) group_left fabric_switch_transmit_bytes_total{fabric=\"west\"}",
	}
	for _, qs := range queries {
		for at := time.Duration(0); at <= 7*time.Minute; at += 15 * time.Second {
			want := evalInstant(t, engine, prom, qs, at)
			got := evalInstant(t, engine, ours, qs, at)
			if !sameVector(got, want) {
				t.Errorf("%s at t0+%s:\n got  %v\n want %v", qs, at, got, want)
			}
		}
		want := evalRangeOver(t, engine, prom, qs, 0, 7*time.Minute, 15*time.Second)
		got := evalRangeOver(t, engine, ours, qs, 0, 7*time.Minute, 15*time.Second)
		if !sameMatrix(got, want) {
			t.Errorf("%s over t0..t0+7m:\n got  %v\n want %v", qs, got, want)
		}
	}
}

// A failing source is not re-stamped: three minutes after its last snapshot
// its series still show that snapshot's time, and after the lookback delta
// they are gone while the other sources' series go on.
func TestUnionFailingSource(t *testing.T) {
	east, west, ports := unionHistories(t)
	a := newTestAPIs(t, []*History{east, west, ports}, Options{})
	ts := a.instant(t, `timestamp(fabric_switch_transmit_bytes_total{fabric="east"})`, 3*time.Minute)
	if len(ts) != 3 {
		t.Fatalf("east at t0+3m: %v", ts)
	}
	for id, v := range ts {
		if v != float64(t0.Add(50*time.Second).Unix()) {
			t.Errorf("%s stamped %v, want its last snapshot's t0+50s", id, v)
		}
	}
	// 50s + 5m lookback: east is gone, west is not.
	got := a.instant(t, "count by (fabric) (fabric_switch_transmit_bytes_total)", 5*time.Minute+51*time.Second)
	want := map[string]float64{`{"fabric":"west"}`: 2, `{}`: 1}
	checkVector(t, "count by (fabric)", got, want)
}

func TestUnionMetaEndpoints(t *testing.T) {
	east, west, ports := unionHistories(t)
	a := newTestAPIs(t, []*History{east, west, ports}, Options{})
	for _, tc := range []struct {
		path   string
		params []string
		want   []string
	}{
		{"/api/v1/labels", nil, []string{"__name__", "fabric", "port", "switch_id"}},
		// SW-05's empty fabric is no value.
		{"/api/v1/label/fabric/values", nil, []string{"east", "west"}},
		{"/api/v1/label/switch_id/values", nil, []string{"SW-01", "SW-02", "SW-03", "SW-04", "SW-05"}},
		{"/api/v1/label/switch_id/values", []string{"match[]", `{fabric="west"}`}, []string{"SW-01", "SW-04"}},
		{"/api/v1/label/switch_id/values", []string{"match[]", `fabric_switch_transmit_bytes_total{fabric=""}`}, []string{"SW-05"}},
		// After east stopped, only the other sources' values.
		{"/api/v1/label/switch_id/values", []string{"start", unix(time.Minute)}, []string{"SW-01", "SW-04", "SW-05"}},
		{"/api/v1/label/__name__/values", []string{"start", unix(time.Minute)}, []string{"fabric_port_transmit_bytes_total", "fabric_switch_transmit_bytes_total"}},
		{"/api/v1/labels", []string{"match[]", `{switch_id="SW-05"}`}, []string{"__name__", "switch_id"}},
	} {
		if got := decode[[]string](t, a.ok(t, tc.path, tc.params...)); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: got %v, want %v", tc.path, tc.params, got, tc.want)
		}
	}

	// The series of both fabrics named alike, in label order, and SW-05
	// without a fabric label.
	got := decode[[]map[string]string](t, a.ok(t, "/api/v1/series", "match[]", `fabric_switch_transmit_bytes_total{switch_id=~"SW-0[15]"}`))
	want := []map[string]string{
		{"__name__": "fabric_switch_transmit_bytes_total", "fabric": "east", "switch_id": "SW-01"},
		{"__name__": "fabric_switch_transmit_bytes_total", "fabric": "west", "switch_id": "SW-01"},
		{"__name__": "fabric_switch_transmit_bytes_total", "switch_id": "SW-05"},
	}
	if toJSON(got) != toJSON(want) {
		t.Errorf("series:\n got  %v\n want %v", got, want)
	}

	// Metadata of columns the table does not know, from any source.
	east.Append(withFabric(t, buildSnapshot(t, t0.Add(60*time.Second), append(slices.Clone(fixtureColumns), "Fan_Speed_RPM"),
		fixtureRow{"SW-01", map[string]float64{"Fan_Speed_RPM": 9000}}), "east"))
	meta := decode[map[string][]metadataEntry](t, a.ok(t, "/api/v1/metadata", "metric", "fabric_switch_fan_speed_rpm"))
	if len(meta) != 1 {
		t.Errorf("metadata of the east source's unknown column: %v", meta)
	}
}

// One history is served without the merging layer.
func TestUnionOfOneIsTheHistory(t *testing.T) {
	h := fixtureHistory(t)
	if _, ok := Union(h).(queryable); !ok {
		t.Errorf("Union of one history is a %T", Union(h))
	}
}
