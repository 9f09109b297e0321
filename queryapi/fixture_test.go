package queryapi

import (
	"math"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// t0 is the fixture's first snapshot time. promqltest loads series from
// time zero, so the fixture starts there too and the two can be compared.
var t0 = time.Unix(0, 0).UTC()

const step = 10 * time.Second

// fixtureColumns are source columns: a counter, a gauge, and a gauge with a
// scale (microseconds exported as seconds).
var fixtureColumns = []string{"Tx_Bytes", "Temperature_C", "Latency_Avg_uSec"}

// fixtureRow is one switch in one snapshot; a column missing from vals is an
// empty cell.
type fixtureRow struct {
	id   string
	vals map[string]float64
}

// buildSnapshot builds a snapshot the way the parser does: columns named by
// the default schema, integers kept exact.
func buildSnapshot(t testing.TB, at time.Time, cols []string, rows ...fixtureRow) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, cols, len(rows))
	for _, r := range rows {
		row := b.AddRow(r.id)
		for c, name := range cols {
			v, ok := r.vals[name]
			if !ok {
				continue
			}
			if v == math.Trunc(v) && v >= 0 {
				b.Set(row, c, snapshot.UintValue(uint64(v)))
			} else {
				b.Set(row, c, snapshot.FloatValue(v))
			}
		}
	}
	metrics, _ := schema.Default().Resolve(schema.SwitchSubsystem, cols)
	s, err := b.Build(at, metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The fixture fabric, six snapshots ten seconds apart (k = 0..5):
//
//	SW-01  Tx_Bytes 1000+500k (50 B/s), Temperature 40+k, latency 2.5 µs
//	SW-02  Tx_Bytes 100 400 700 50 350 650 (rebooted before k=3),
//	       Temperature 55 except an empty cell at k=4, latency 10 µs
//	SW-03  Tx_Bytes 2000+100k, Temperature 70, latency 4 µs; the switch is
//	       missing from the snapshots k=2 and k=3 and comes back at k=4.
var sw02Tx = []float64{100, 400, 700, 50, 350, 650}

func fixtureSnapshot(t testing.TB, k int) *snapshot.Snapshot {
	rows := []fixtureRow{
		{"SW-01", map[string]float64{"Tx_Bytes": 1000 + 500*float64(k), "Temperature_C": 40 + float64(k), "Latency_Avg_uSec": 2.5}},
		{"SW-02", map[string]float64{"Tx_Bytes": sw02Tx[k], "Temperature_C": 55, "Latency_Avg_uSec": 10}},
	}
	if k == 4 {
		delete(rows[1].vals, "Temperature_C")
	}
	if k != 2 && k != 3 {
		rows = append(rows, fixtureRow{"SW-03", map[string]float64{"Tx_Bytes": 2000 + 100*float64(k), "Temperature_C": 70, "Latency_Avg_uSec": 4}})
	}
	return buildSnapshot(t, t0.Add(time.Duration(k)*step), fixtureColumns, rows...)
}

// fixtureHistory is the fixture's six snapshots in a history.
func fixtureHistory(t testing.TB) *History {
	h := NewHistory(time.Hour)
	for k := range 6 {
		h.Append(fixtureSnapshot(t, k))
	}
	return h
}

// fixturePromQL is the same fabric as a promqltest load script: "stale"
// where the switch went missing, "_" where only a cell was empty.
const fixturePromQL = `
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

func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
