package queryapi

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// benchSnapshot is a fabric of n switches with the given columns, counters
// advancing with k; the row storage is shared with prev as the parser shares
// it for an unchanged fabric.
func benchSnapshot(tb testing.TB, n, k int, cols []string, prev *snapshot.Snapshot) *snapshot.Snapshot {
	tb.Helper()
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, cols, n)
	b.ShareIndex(prev)
	for i := range n {
		row := b.AddRow(fmt.Sprintf("SW-%06d", i+1))
		for c := range cols {
			b.Set(row, c, snapshot.UintValue(uint64(i*1000+(k+1)*(i%97+1)*(c+1))))
		}
	}
	metrics, _ := schema.Default().Resolve(schema.SwitchSubsystem, cols)
	s, err := b.Build(t0.Add(time.Duration(k)*step), metrics)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// benchHistory holds snapshots k = 0..snaps-1 of n switches.
func benchHistory(tb testing.TB, n, snaps int, cols []string) (*History, *snapshot.Snapshot) {
	h := NewHistory(time.Hour)
	var s *snapshot.Snapshot
	for k := range snaps {
		s = benchSnapshot(tb, n, k, cols, s)
		h.Append(s)
	}
	return h, s
}

func allColumns() []string {
	var cols []string
	for _, m := range schema.Default().Known() {
		if m.Name[:len("fabric_switch_")] == "fabric_switch_" {
			cols = append(cols, m.Column)
		}
	}
	return cols
}

var (
	benchOnce sync.Once
	benchH    *History
	benchLast *snapshot.Snapshot
)

// bench100k is 100,000 switches (one transmit_bytes series each) × 6
// snapshots, shared by the query benchmarks.
func bench100k(b *testing.B) *History {
	benchOnce.Do(func() { benchH, benchLast = benchHistory(b, 100_000, 6, []string{"Tx_Bytes"}) })
	return benchH
}

func runQuery(b *testing.B, ng *promql.Engine, q queryable, qs string, want int) {
	b.Helper()
	at := t0.Add(50 * time.Second)
	for b.Loop() {
		qry, err := ng.NewInstantQuery(context.Background(), q, nil, qs, at)
		if err != nil {
			b.Fatal(err)
		}
		v, err := qry.Exec(context.Background()).Vector()
		if err != nil || len(v) != want {
			b.Fatalf("%d samples, err %v", len(v), err)
		}
		qry.Close()
	}
}

// BenchmarkSelective compares x{switch_id="…"} with the label index and with
// a scan of every series' labels, at 100k series.
func BenchmarkSelective(b *testing.B) {
	h := bench100k(b)
	ng := New([]*History{h}, nil, Options{}).engine
	const qs = `fabric_switch_transmit_bytes_total{switch_id="SW-050000"}`
	b.Run("index", func(b *testing.B) { runQuery(b, ng, queryable{h: h}, qs, 1) })
	b.Run("fullscan", func(b *testing.B) { runQuery(b, ng, queryable{h: h, fullScan: true}, qs, 1) })
}

// BenchmarkTopkRate is the dashboard's heaviest panel: 100k series × 6
// snapshots.
func BenchmarkTopkRate(b *testing.B) {
	h := bench100k(b)
	ng := New([]*History{h}, nil, Options{}).engine
	runQuery(b, ng, queryable{h: h}, "topk(10, rate(fabric_switch_transmit_bytes_total[1m]))", 10)
}

// BenchmarkHistoryBytesPerSample measures the heap a history keeps per
// stored sample: 10,000 switches × every switch column, over 6 snapshots
// and over 60 (10 minutes at a 10s poll), layout and index included.
func BenchmarkHistoryBytesPerSample(b *testing.B) {
	cols := allColumns()
	const switches = 10_000
	snaps := make([]*snapshot.Snapshot, 60)
	for k := range snaps {
		var prev *snapshot.Snapshot
		if k > 0 {
			prev = snaps[k-1]
		}
		snaps[k] = benchSnapshot(b, switches, k, cols, prev)
	}
	for _, n := range []int{6, 60} {
		b.Run(fmt.Sprintf("snapshots-%d", n), func(b *testing.B) {
			var perSample float64
			for b.Loop() {
				before := heapInUse()
				h := NewHistory(time.Hour)
				for _, s := range snaps[:n] {
					h.Append(s)
				}
				perSample = float64(heapInUse()-before) / float64(h.Load().Samples())
				runtime.KeepAlive(h)
			}
			b.ReportMetric(perSample, "bytes/sample")
			b.ReportMetric(float64(switches*len(cols)), "series")
		})
	}
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
