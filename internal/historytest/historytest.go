// Package historytest builds the snapshots that the history and queryapi
// tests share: the fixture fabric (three switches over six polls, with a
// counter reset, an empty cell and a switch that goes missing), the sources
// of the union tests, and the large fabrics of the query benchmarks, each
// with the promqltest script that loads the same samples into Prometheus's
// own storage where a test compares against it.
//
// It fills histories through Appender rather than naming history.History,
// so that the history package's own tests can use it without an import
// cycle.
package historytest

import (
	"math"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// T0 is the fixture's first snapshot time. promqltest loads series from
// time zero, so the fixture starts there too and the two can be compared.
var T0 = time.Unix(0, 0).UTC()

// Step is the time between the fixture's snapshots, a poll interval.
const Step = 10 * time.Second

// Appender is a history as the fixtures fill it: history.History.
type Appender interface {
	Append(*snapshot.Snapshot)
}

// Columns are the fixture's source columns: a counter, a gauge, and a gauge
// with a scale (microseconds exported as seconds).
func Columns() []string {
	return []string{"Tx_Bytes", "Temperature_C", "Latency_Avg_uSec"}
}

// Row is one row of any layout: its label values (one per label name, ""
// for absent) and its cells by column; a column missing from Values is an
// empty cell.
type Row struct {
	Labels []string
	Values map[string]float64
}

// Rows builds a snapshot with any label names, as the parser (then
// WithLabels or MergeSources) would: columns named by the default schema,
// integers kept exact.
func Rows(tb testing.TB, at time.Time, labelNames, cols []string, rows ...Row) *snapshot.Snapshot {
	tb.Helper()
	b := snapshot.NewBuilder(labelNames, cols, len(rows))
	for _, r := range rows {
		i := b.AddRow(r.Labels...)
		for c, name := range cols {
			if v, ok := r.Values[name]; ok {
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
		tb.Fatal(err)
	}
	return s
}

// Switch is one switch's row in a snapshot of switches.
type Switch struct {
	ID     string
	Values map[string]float64
}

// Switches builds a snapshot of switch rows, labelled by switch_id alone.
func Switches(tb testing.TB, at time.Time, cols []string, rows ...Switch) *snapshot.Snapshot {
	tb.Helper()
	rs := make([]Row, len(rows))
	for i, r := range rows {
		rs[i] = Row{Labels: []string{r.ID}, Values: r.Values}
	}
	return Rows(tb, at, []string{snapshot.SwitchLabel}, cols, rs...)
}

// WithFabric is s with the label fabric="<fabric>" on every row, as a
// source's configured labels add it.
func WithFabric(tb testing.TB, s *snapshot.Snapshot, fabric string) *snapshot.Snapshot {
	tb.Helper()
	l, err := s.WithLabels([]string{"fabric"}, []string{fabric}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// The fixture fabric, six snapshots ten seconds apart (k = 0..5):
//
//	SW-01  Tx_Bytes 1000+500k (50 B/s), Temperature 40+k, latency 2.5 µs
//	SW-02  Tx_Bytes 100 400 700 50 350 650 (rebooted before k=3),
//	       Temperature 55 except an empty cell at k=4, latency 10 µs
//	SW-03  Tx_Bytes 2000+100k, Temperature 70, latency 4 µs; the switch is
//	       missing from the snapshots k=2 and k=3 and comes back at k=4.
var sw02Tx = []float64{100, 400, 700, 50, 350, 650}

// Fixture is the fixture fabric's snapshot k, at T0 + k·Step.
func Fixture(tb testing.TB, k int) *snapshot.Snapshot {
	rows := []Switch{
		{"SW-01", map[string]float64{"Tx_Bytes": 1000 + 500*float64(k), "Temperature_C": 40 + float64(k), "Latency_Avg_uSec": 2.5}},
		{"SW-02", map[string]float64{"Tx_Bytes": sw02Tx[k], "Temperature_C": 55, "Latency_Avg_uSec": 10}},
	}
	if k == 4 {
		delete(rows[1].Values, "Temperature_C")
	}
	if k != 2 && k != 3 {
		rows = append(rows, Switch{"SW-03", map[string]float64{"Tx_Bytes": 2000 + 100*float64(k), "Temperature_C": 70, "Latency_Avg_uSec": 4}})
	}
	return Switches(tb, T0.Add(time.Duration(k)*Step), Columns(), rows...)
}

// FixtureHistory appends the fixture's six snapshots to h and returns it.
func FixtureHistory[H Appender](tb testing.TB, h H) H {
	for k := range 6 {
		h.Append(Fixture(tb, k))
	}
	return h
}

// FixturePromQL is the same fabric as a promqltest load script: "stale"
// where the switch went missing, "_" where only a cell was empty.
const FixturePromQL = `
load 10s
  fabric_switch_transmit_bytes_total{switch_id="SW-01"} 1000+500x5
  fabric_switch_transmit_bytes_total{switch_id="SW-02"} 100 400 700 50 350 650
  fabric_switch_transmit_bytes_total{switch_id="SW-03"} 2000 2100 stale _ 2400 2500
  fabric_switch_temperature_celsius{switch_id="SW-01"} 40+1x5
  fabric_switch_temperature_celsius{switch_id="SW-02"} 55 55 55 55 stale 55
  fabric_switch_temperature_celsius{switch_id="SW-03"} 70 70 stale _ 70 70
  fabric_switch_latency_average_seconds{switch_id="SW-01"} 0.0000025x5
  fabric_switch_latency_average_seconds{switch_id="SW-02"} 0.00001x5
  fabric_switch_latency_average_seconds{switch_id="SW-03"} 0.000004 0.000004 stale _ 0.000004 0.000004
`

// UnionSources appends the sources of the union tests, one history each:
//
//	east   the fixture fabric (SW-01..03, three columns, SW-03 missing at
//	       k=2,3) with fabric="east"; it stops publishing after k=5 (T0+50s),
//	       a failing source
//	west   SW-01 and SW-04 with fabric="west", and SW-05 whose fabric label
//	       is empty (absent), Tx_Bytes only, k=0..40 (to T0+400s)
//	ports  per-port rows of SW-01 (ports 1 and 2), k=0..40: series whose
//	       names no other source has
//
// UnionPromQL, after FixturePromQL with fabric="east" added, loads the same
// samples.
func UnionSources(tb testing.TB, east, west, ports Appender) {
	for k := range 6 {
		east.Append(WithFabric(tb, Fixture(tb, k), "east"))
	}
	tx := func(v float64) map[string]float64 { return map[string]float64{"Tx_Bytes": v} }
	for k := range 41 {
		at := T0.Add(time.Duration(k) * Step)
		f := float64(k)
		west.Append(Rows(tb, at, []string{snapshot.SwitchLabel, "fabric"}, Columns(),
			Row{[]string{"SW-01", "west"}, tx(100 * f)},
			Row{[]string{"SW-04", "west"}, tx(5 + f)},
			Row{[]string{"SW-05", ""}, tx(7 + 3*f)}))
		ports.Append(Rows(tb, at, []string{snapshot.SwitchLabel, "port"}, []string{"Tx_Bytes"},
			Row{[]string{"SW-01", "1"}, tx(10 * f)},
			Row{[]string{"SW-01", "2"}, tx(20 * f)}))
	}
}

// UnionPromQL is the west and ports sources of UnionSources as a promqltest
// load script.
const UnionPromQL = `
load 10s
  fabric_switch_transmit_bytes_total{fabric="west",switch_id="SW-01"} 0+100x40
  fabric_switch_transmit_bytes_total{fabric="west",switch_id="SW-04"} 5+1x40
  fabric_switch_transmit_bytes_total{switch_id="SW-05"} 7+3x40
  fabric_port_transmit_bytes_total{switch_id="SW-01",port="1"} 0+10x40
  fabric_port_transmit_bytes_total{switch_id="SW-01",port="2"} 0+20x40
`
