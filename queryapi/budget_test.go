package queryapi

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The derived concurrency is as many queries at their limits as fit in
// half the memory limit, between 1 and 20.
func TestConcurrencyFor(t *testing.T) {
	const GiB = 1 << 30
	for _, tc := range []struct {
		name     string
		limit    int64
		perQuery int64
		want     int
	}{
		{"no limit", math.MaxInt64, GiB, 20},
		{"unknown limit", 0, GiB, 20},
		// 24 GiB × 0.9 (--auto-gomemlimit.ratio) = 21.6 GiB; half is
		// 10.8 GiB: 10 queries of 1 GiB.
		{"24 GiB machine", 24 * GiB * 9 / 10, GiB, 10},
		{"just fits one", 2 * GiB, GiB, 1},
		{"fits none: still one", GiB, 4 * GiB, 1},
		{"large machine: capped", 1024 * GiB, GiB, 20},
		{"small queries: capped", 8 * GiB, 1 << 20, 20},
	} {
		if got := ConcurrencyFor(tc.limit, tc.perQuery); got != tc.want {
			t.Errorf("%s: ConcurrencyFor(%d, %d) = %d, want %d", tc.name, tc.limit, tc.perQuery, got, tc.want)
		}
	}
}

// Options derive the concurrency from the memory limit unless it is set.
func TestOptionsDeriveConcurrency(t *testing.T) {
	const GiB = 1 << 30
	// Limits of 1 GiB per query: 1e8 samples × 24 B = 2.4e9 B = 2.24 GiB
	// ... chosen so that QueryMemory is a round figure.
	o := Options{MaxSamples: 1, MaxSeries: 1, MaxResponseBytes: GiB - bytesPerSample - bytesPerSeries, MemoryLimit: 8 * GiB}
	if got := o.withDefaults().MaxConcurrency; got != 4 {
		t.Errorf("8 GiB limit, 1 GiB per query: %d queries, want 4", got)
	}
	o.MaxConcurrency = 7
	if got := o.withDefaults().MaxConcurrency; got != 7 {
		t.Errorf("explicit --query.max-concurrency: %d, want 7", got)
	}
}

// portSnapshot is a per-port fabric of n ports (series per column) at
// T0 + k·Step, labelled as the UFM parser labels ports.
func portSnapshot(tb testing.TB, n, k int, cols []string, prev *snapshot.Snapshot) *snapshot.Snapshot {
	tb.Helper()
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel, snapshot.PortLabel, "node_guid"}, cols, n)
	b.ShareIndex(prev)
	for i := range n {
		row := b.AddRow(fmt.Sprintf("SW-%04d", i/64+1), fmt.Sprint(i%64+1), fmt.Sprintf("0x0002c903%08x", i/64))
		for c := range cols {
			b.Set(row, c, snapshot.UintValue(uint64(1825815752859+i*1000+(k+1)*(i%97+1)*(c+1))))
		}
	}
	metrics, _ := schema.Default().Resolve(schema.PortSubsystem, cols)
	s, err := b.Build(historytest.T0.Add(time.Duration(k)*historytest.Step), metrics)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// heldBy runs f and returns what its result holds on the heap (live after
// a collection, the result kept) and what f allocated in all, an upper
// bound of its peak.
func heldBy(f func() any) (held, allocated uint64) {
	var before, during, after runtime.MemStats
	runtime.GC()
	runtime.GC() // twice: sync.Pools (the engine's point slices) empty
	runtime.ReadMemStats(&before)
	gc := debug.SetGCPercent(-1)
	v := f()
	runtime.ReadMemStats(&during)
	debug.SetGCPercent(gc)
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return after.HeapAlloc - before.HeapAlloc, during.TotalAlloc - before.TotalAlloc
}

// TestQueryMemoryAtLimits measures what queries allocate per sample at
// their peak (what --query.max-samples counts) and per series loaded
// (--query.max-series), and fails if one allocates more than the budget
// (QueryMemory) assumes: the figures behind bytesPerSample and
// bytesPerSeries. Everything a query allocates bounds what it holds at
// once. The fabric is 10,000 ports with two counters, 120 polls.
func TestQueryMemoryAtLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("measures queries over a 2.4-million-sample history")
	}
	const ports, polls = 10_000, 120
	h := history.New(time.Hour)
	cols := []string{"PortXmitDataExtended", "PortRcvDataExtended"}
	var prev *snapshot.Snapshot
	for k := range polls {
		prev = portSnapshot(t, ports, k, cols, prev)
		h.Append(prev)
	}
	a := New(history.NewSet(h), schema.Default(), Options{MaxSamples: 50_000_000, MaxSeries: 1_000_000})
	end := historytest.T0.Add((polls - 1) * historytest.Step)
	for _, q := range []struct {
		name          string
		query         string
		steps         int // 0: an instant query
		series        int
		samples       int // in the result
		stepsOfSample int
	}{
		{"instant, one metric", "fabric_port_transmit_bytes_total", 0, ports, ports, 1},
		{"instant, both metrics", `{__name__=~"fabric_port_.*_bytes_total"}`, 0, 2 * ports, 2 * ports, 1},
		{"range, one metric", "fabric_port_transmit_bytes_total", polls, ports, ports * polls, polls},
		{"range, both metrics", `{__name__=~"fabric_port_.*_bytes_total"}`, polls, 2 * ports, 2 * ports * polls, polls},
		{"range, rate", "rate(fabric_port_transmit_bytes_total[1m])", polls, ports, ports * (polls - 1), polls},
		{"range, sum of two", "fabric_port_transmit_bytes_total + fabric_port_receive_bytes_total", polls, 2 * ports, ports * polls, polls},
		{"instant, topk of rate", "topk(10, rate(fabric_port_transmit_bytes_total[5m]))", 0, ports, 10, 1},
	} {
		var (
			res *promql.Result
			qry promql.Query
		)
		held, allocated := heldBy(func() any {
			var err error
			if q.steps == 0 {
				qry, err = a.engine.NewInstantQuery(t.Context(), a.queryable, nil, q.query, end)
			} else {
				qry, err = a.engine.NewRangeQuery(t.Context(), a.queryable, nil, q.query, historytest.T0, end, historytest.Step)
			}
			if err != nil {
				t.Fatal(err)
			}
			res = qry.Exec(t.Context())
			return res
		})
		if res.Err != nil {
			t.Fatalf("%s: %v", q.name, res.Err)
		}
		peak := qry.Stats().Samples.PeakSamples
		budget := uint64(q.series*bytesPerSeries + peak*bytesPerSample)
		t.Logf("%-22s %7d series %9d samples, peak %9d: holds %6.1f MB, allocated %6.1f MB (%5.1f B/peak sample, %5.1f B/series); budget %6.1f MB",
			q.name, q.series, q.samples, peak, float64(held)/1e6, float64(allocated)/1e6, float64(allocated)/float64(peak), float64(allocated)/float64(q.series), float64(budget)/1e6)
		if allocated > budget {
			t.Errorf("%s: allocated %d bytes, over the budget of %d", q.name, allocated, budget)
		}
	}
}
