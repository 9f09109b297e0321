package history

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// The union of the sources' histories answers as Prometheus does over the
// same samples in one storage: series with the same name under different
// fabric labels stay apart, an empty label is no label, and the east source
// that stopped at t0+50s keeps its samples' times, its series fading out
// after the lookback delta (5m) instead of being carried on by the others.
func TestUnionSameAsPrometheus(t *testing.T) {
	east, west, ports := New(time.Hour), New(time.Hour), New(time.Hour)
	historytest.UnionSources(t, east, west, ports)
	script := strings.ReplaceAll(historytest.FixturePromQL, "{switch_id=", `{fabric="east",switch_id=`) + historytest.UnionPromQL
	prom := promqltest.LoadedStorage(t, script)
	ours := Union(east, west, ports)
	engine := newEngine()
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

// One history is served without the merging layer.
func TestUnionOfOneIsTheHistory(t *testing.T) {
	h := fixtureHistory(t)
	if _, ok := Union(h).(queryable); !ok {
		t.Errorf("Union of one history is a %T", Union(h))
	}
}
