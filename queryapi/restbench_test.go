package queryapi

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/restapi"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// BenchmarkGetMetricUnderQueries measures the REST GetMetric path alone and
// while other goroutines run topk(rate) over 100k series (100,000 switches
// with one transmit_bytes series each, 6 snapshots) without pause.
func BenchmarkGetMetricUnderQueries(b *testing.B) {
	h := history.New(time.Hour)
	last := historytest.AppendBenchFabric(b, h, historytest.BenchSwitches(), 6, []string{"Tx_Bytes"})
	store := &snapshot.Store{}
	store.Publish(last)
	rest := restapi.New(store, 10*time.Second, nil)
	req := httptest.NewRequest("GET", "/telemetry/GetMetric?switch_id="+historytest.BenchMiddle()+"&metric_name=Tx_Bytes", nil)
	get := func(b *testing.B) {
		for b.Loop() {
			w := httptest.NewRecorder()
			rest.GetMetric(w, req)
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body)
			}
		}
	}
	b.Run("idle", get)
	for _, busy := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprintf("queries-%d", busy), func(b *testing.B) {
			stop := heavyQueries(h, busy)
			get(b)
			b.ReportMetric(float64(stop()), "queries")
		})
	}
}

// heavyQueries runs topk(rate) over 100k series in n goroutines until the
// returned function stops them and reports how many ran.
func heavyQueries(h *history.History, n int) func() int64 {
	ng := New(history.NewSet(h), nil, Options{}).engine
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var queries atomic.Int64
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				qry, err := ng.NewInstantQuery(ctx, h.Queryable(), nil, "topk(10, rate(fabric_switch_transmit_bytes_total[1m]))", t0.Add(50*time.Second))
				if err == nil {
					qry.Exec(ctx)
					qry.Close()
					queries.Add(1)
				}
			}
		})
	}
	return func() int64 {
		cancel()
		wg.Wait()
		return queries.Load()
	}
}
