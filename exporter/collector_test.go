package exporter

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// fixtureTime is the source time of the fixture snapshots.
var fixtureTime = time.Unix(1700000000, 500_000_000)

// build builds a snapshot from rows (label values, then one value per
// column; nil cells are absent) and names its columns with the default
// table, as switch-level or per-port metrics by its labels.
func build(t testing.TB, labelNames, columns []string, rows [][]any) *snapshot.Snapshot {
	t.Helper()
	return buildAt(t, fixtureTime, labelNames, columns, rows)
}

// buildAt is build with the snapshot's time.
func buildAt(t testing.TB, at time.Time, labelNames, columns []string, rows [][]any) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder(labelNames, columns, len(rows))
	for _, r := range rows {
		labels := make([]string, len(labelNames))
		for i := range labels {
			labels[i] = r[i].(string)
		}
		row := b.AddRow(labels...)
		for col, cell := range r[len(labelNames):] {
			switch v := cell.(type) {
			case nil:
			case uint64:
				b.Set(row, col, snapshot.UintValue(v))
			case int:
				b.Set(row, col, snapshot.IntValue(int64(v)))
			case float64:
				b.Set(row, col, snapshot.FloatValue(v))
			default:
				t.Fatalf("bad fixture cell %T", cell)
			}
		}
	}
	metrics, _ := schema.Default().Resolve(snapshot.Subsystem(labelNames), columns)
	snap, err := b.Build(at, metrics)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// publish builds a snapshot and publishes it alone in store.
func publish(t testing.TB, store *snapshot.Store, labelNames, columns []string, rows [][]any) *snapshot.Snapshot {
	t.Helper()
	snap := build(t, labelNames, columns, rows)
	store.Publish(snap)
	return snap
}

// smallFixture has known columns with and without scale, an absent value,
// an unknown column and one whose name clashes with a known metric.
func smallFixture(t testing.TB) *snapshot.Store {
	store := &snapshot.Store{}
	publish(t, store, []string{"switch_id"},
		[]string{"Latency_Avg_uSec", "Bandwidth_Util_Pct", "Rx_Bytes", "Temperature_C", "Temperature_Celsius", "FanSpeedRPM"},
		[][]any{
			// Added out of order: the snapshot sorts rows.
			{"sw-b", uint64(4), uint64(50), uint64(12345678901234), -3, 40.5, nil},
			{"sw-a", uint64(2), 100.0, uint64(0), nil, 41.0, uint64(9000)},
		})
	return store
}

// The expected exposition is written out by hand from the table and
// the schema's help texts, not produced by the code under test.
const smallFixtureExposition = `
# HELP fabric_snapshot_series Data series (present values) in the snapshot parts served on this endpoint, all parts together, cached from the last successful polls.
# TYPE fabric_snapshot_series gauge
fabric_snapshot_series 10
# HELP fabric_snapshot_switches Distinct switches in the snapshot parts served on this endpoint (switch-level and per-port), cached from the last successful polls.
# TYPE fabric_snapshot_switches gauge
fabric_snapshot_switches 2
# HELP fabric_snapshot_timestamp_seconds Source time of the newest snapshot part served on this endpoint, in seconds since the epoch (its newest row timestamp, or its poll time if the source gives none).
# TYPE fabric_snapshot_timestamp_seconds gauge
fabric_snapshot_timestamp_seconds 1.7000000005e+09
# HELP fabric_switch_bandwidth_utilization_ratio Bandwidth utilization, 0 to 1 (source column Bandwidth_Util_Pct, percent). Cached from the last successful poll of the source.
# TYPE fabric_switch_bandwidth_utilization_ratio gauge
fabric_switch_bandwidth_utilization_ratio{switch_id="sw-a"} 1
fabric_switch_bandwidth_utilization_ratio{switch_id="sw-b"} 0.5
# HELP fabric_switch_fan_speed_rpm Value of source column "FanSpeedRPM" (no schema entry; exported as a gauge), cached from the last successful poll.
# TYPE fabric_switch_fan_speed_rpm gauge
fabric_switch_fan_speed_rpm{switch_id="sw-a"} 9000
# HELP fabric_switch_latency_average_seconds Average latency in seconds (source column Latency_Avg_uSec, microseconds). Cached from the last successful poll of the source.
# TYPE fabric_switch_latency_average_seconds gauge
fabric_switch_latency_average_seconds{switch_id="sw-a"} 2e-06
fabric_switch_latency_average_seconds{switch_id="sw-b"} 4e-06
# HELP fabric_switch_receive_bytes_total Bytes received (source column Rx_Bytes). Cached from the last successful poll of the source.
# TYPE fabric_switch_receive_bytes_total counter
fabric_switch_receive_bytes_total{switch_id="sw-a"} 0
fabric_switch_receive_bytes_total{switch_id="sw-b"} 12345678901234
# HELP fabric_switch_temperature_celsius Temperature in degrees Celsius (source column Temperature_C). Cached from the last successful poll of the source.
# TYPE fabric_switch_temperature_celsius gauge
fabric_switch_temperature_celsius{switch_id="sw-b"} -3
# HELP fabric_switch_temperature_celsius_2 Value of source column "Temperature_Celsius" (no schema entry; exported as a gauge), cached from the last successful poll.
# TYPE fabric_switch_temperature_celsius_2 gauge
fabric_switch_temperature_celsius_2{switch_id="sw-a"} 41
fabric_switch_temperature_celsius_2{switch_id="sw-b"} 40.5
`

func TestCollectorCompare(t *testing.T) {
	c := NewCollector(smallFixture(t))
	if err := testutil.CollectAndCompare(c, strings.NewReader(smallFixtureExposition)); err != nil {
		t.Fatal(err)
	}
}

func TestCollectorLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(smallFixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestCollectorBeforeFirstSnapshot(t *testing.T) {
	if n := testutil.CollectAndCount(NewCollector(&snapshot.Store{})); n != 0 {
		t.Fatalf("collected %d metrics before the first snapshot, want 0", n)
	}
}

func TestCollectorFollowsStore(t *testing.T) {
	store := smallFixture(t)
	c := NewCollector(store)
	publish(t, store, []string{"switch_id"}, []string{"Power_W"}, [][]any{{"sw-z", 250.5}})
	const want = `
# HELP fabric_switch_power_watts Power draw in watts (source column Power_W). Cached from the last successful poll of the source.
# TYPE fabric_switch_power_watts gauge
fabric_switch_power_watts{switch_id="sw-z"} 250.5
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "fabric_switch_power_watts", "fabric_switch_temperature_celsius"); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorBadRowIsolated: a label value client_golang cannot export
// costs that row only.
func TestCollectorBadRowIsolated(t *testing.T) {
	store := &snapshot.Store{}
	publish(t, store, []string{"switch_id"}, []string{"Power_W"}, [][]any{{"ok", 1.0}, {"bad\xff", 2.0}})
	reg := newPedantic(t, NewCollector(store))
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Gather error = %v, want one about UTF-8", err)
	}
	i := slices.IndexFunc(mfs, func(mf *dtoFamily) bool { return mf.GetName() == "fabric_switch_power_watts" })
	if i < 0 || len(mfs[i].Metric) != 1 || mfs[i].Metric[0].GetGauge().GetValue() != 1 {
		t.Fatalf("want the good row alone, got %v", mfs)
	}
}
