package polllog

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

var pollTime = time.Date(2026, 11, 25, 19, 30, 0, 123456789, time.UTC)

// specialValues are the cells a format can get wrong: exact integers past
// 2^53 and at 2^64-1, negative integers, NaN, ±Inf, -0, absent.
var specialValues = []snapshot.Value{
	snapshot.UintValue(math.MaxUint64),
	snapshot.UintValue(1<<53 + 1),
	snapshot.UintValue(0),
	snapshot.IntValue(math.MinInt64),
	snapshot.IntValue(-3),
	snapshot.FloatValue(math.NaN()),
	snapshot.FloatValue(math.Inf(1)),
	snapshot.FloatValue(math.Inf(-1)),
	snapshot.FloatValue(math.Copysign(0, -1)),
	snapshot.FloatValue(41.5),
	{}, // absent
}

// matrixSnapshot is a switch-level snapshot of n switches with the extra
// label fabric, a known column and an unknown one, cells drawn in turn
// from specialValues.
func matrixSnapshot(t testing.TB, n int, at time.Time) *snapshot.Snapshot {
	t.Helper()
	return buildSnapshot(t, []string{snapshot.SwitchLabel, "fabric"}, []string{"Rx_Bytes", "Temperature_C", "Fan_Speed_RPM"}, n, 1, at)
}

// ufmSnapshot is a per-port snapshot shaped like UFM Telemetry's: switch,
// port, node GUID and fabric labels, InfiniBand counters.
func ufmSnapshot(t testing.TB, switches, ports int, at time.Time) *snapshot.Snapshot {
	t.Helper()
	return buildSnapshot(t, []string{snapshot.SwitchLabel, snapshot.PortLabel, "node_guid", "fabric"},
		[]string{"PortXmitDataExtended", "PortRcvDataExtended", "SymbolErrorCounterExtended", "LinkDownedCounterExtended"}, switches, ports, at)
}

func buildSnapshot(t testing.TB, labels, columns []string, switches, ports int, at time.Time) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder(labels, columns, switches*ports)
	cell := 0
	values := make([]snapshot.Value, len(columns))
	for sw := range switches {
		for port := 1; port <= ports; port++ {
			row := []string{fmt.Sprintf("sw-%04d", sw)}
			if slices.Contains(labels, snapshot.PortLabel) {
				row = append(row, fmt.Sprint(port), fmt.Sprintf("0x%016x", 0xe41d2d0300000000+uint64(sw)))
			}
			if slices.Contains(labels, "fabric") {
				row = append(row, "east")
			}
			for c := range values {
				values[c] = specialValues[cell%len(specialValues)]
				cell++
			}
			b.AddRowValues(row, values)
		}
	}
	metrics, _ := schema.Default().Resolve(snapshot.Subsystem(labels), columns)
	s, err := b.Build(at, metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertSameSnapshot compares every label, cell (kind and bits), column,
// metric and the time of two snapshots.
func assertSameSnapshot(t testing.TB, got, want *snapshot.Snapshot) {
	t.Helper()
	if !got.Time().Equal(want.Time()) {
		t.Errorf("time %v, want %v", got.Time(), want.Time())
	}
	if !slices.Equal(got.LabelNames(), want.LabelNames()) || !slices.Equal(got.Columns(), want.Columns()) {
		t.Fatalf("labels %v columns %v, want %v %v", got.LabelNames(), got.Columns(), want.LabelNames(), want.Columns())
	}
	if !slices.Equal(got.Metrics(), want.Metrics()) {
		t.Errorf("metrics %v, want %v", got.Metrics(), want.Metrics())
	}
	if got.NumRows() != want.NumRows() {
		t.Fatalf("%d rows, want %d", got.NumRows(), want.NumRows())
	}
	for row := range want.NumRows() {
		if !slices.Equal(got.RowLabels(row), want.RowLabels(row)) {
			t.Fatalf("row %d labels %v, want %v", row, got.RowLabels(row), want.RowLabels(row))
		}
		for col := range want.Columns() {
			if g, w := got.Value(row, col), want.Value(row, col); g != w {
				t.Fatalf("row %d col %d: %v (kind %v), want %v (kind %v)", row, col, g.Float64(), g.Kind(), w.Float64(), w.Kind())
			}
		}
	}
}

// testLog is a topic in memory: records appended per partition, offsets
// their index.
type testLog struct {
	parts [][][]byte
}

func newTestLog(partitions int) *testLog { return &testLog{parts: make([][][]byte, partitions)} }

func (l *testLog) append(recs []Record) {
	for _, r := range recs {
		l.parts[r.Partition] = append(l.parts[r.Partition], r.Value)
	}
}

// publish encodes one poll of s into the log.
func (l *testLog) publish(t testing.TB, source string, seq uint64, s *snapshot.Snapshot) []Record {
	t.Helper()
	enc := Encoder{Partitions: len(l.parts)}
	recs, err := enc.Encode(PollID{Source: source, Seq: seq, PublishTime: s.Time().Add(time.Second)}, s)
	if err != nil {
		t.Fatal(err)
	}
	l.append(recs)
	return recs
}

// readAll feeds every partition to a, partition after partition.
func (l *testLog) readAll(a *Assembler) (polls []*Poll, rejected []Rejection) {
	for p, recs := range l.parts {
		for off, v := range recs {
			ps, rs := a.Add(int32(p), int64(off), v)
			polls, rejected = append(polls, ps...), append(rejected, rs...)
		}
	}
	return polls, rejected
}

func reasons(rs []Rejection) []Reason {
	var out []Reason
	for _, r := range rs {
		out = append(out, r.Reason)
	}
	return out
}
