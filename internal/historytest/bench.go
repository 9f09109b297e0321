package historytest

import (
	"fmt"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// BenchSize is a benchmark's size: the issue's, or a tiny one with -short
// (the suite's bench-short run, which only checks that the benchmarks still
// work).
func BenchSize(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// BenchSwitches is the size of the query benchmarks' fabric: 100,000
// switches.
func BenchSwitches() int { return BenchSize(100_000, 1_000) }

// BenchMiddle is the switch in the middle of BenchSwitches, the one the
// selective benchmarks look up.
func BenchMiddle() string { return fmt.Sprintf("SW-%06d", BenchSwitches()/2) }

// BenchSnapshot is a fabric of n switches with the given columns at
// T0 + k·Step, counters advancing with k; the row storage is shared with
// prev as the parser shares it for an unchanged fabric.
func BenchSnapshot(tb testing.TB, n, k int, cols []string, prev *snapshot.Snapshot) *snapshot.Snapshot {
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
	s, err := b.Build(T0.Add(time.Duration(k)*Step), metrics)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// AppendBenchFabric appends snapshots k = 0..snaps-1 of n switches
// (BenchSnapshot) to h and returns the last.
func AppendBenchFabric(tb testing.TB, h Appender, n, snaps int, cols []string) *snapshot.Snapshot {
	var s *snapshot.Snapshot
	for k := range snaps {
		s = BenchSnapshot(tb, n, k, cols, s)
		h.Append(s)
	}
	return s
}
