package queryapi

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// BenchmarkSelfMetricsMerge measures what querying the self-metrics with the
// history costs a data query: topk(rate) over 100k series (100,000 switches,
// 6 snapshots) and one switch's series, over the history alone and merged
// with a self-metrics store of 500 series.
func BenchmarkSelfMetricsMerge(b *testing.B) {
	h := history.New(time.Hour)
	historytest.AppendBenchFabric(b, h, historytest.BenchSwitches(), 6, []string{"Tx_Bytes"})
	var script strings.Builder
	script.WriteString("load 10s\n")
	for i := range 500 {
		fmt.Fprintf(&script, "  self_metric_%d{job=\"fabric-aggregator\",instance=\"agg:8080\"} 0+1x10\n", i)
	}
	self := promqltest.LoadedStorage(b, script.String())
	a := New(history.NewSet(h), nil, Options{})
	at := t0.Add(50 * time.Second)
	for _, q := range []struct{ name, query string }{
		{"topk-rate", "topk(10, rate(fabric_switch_transmit_bytes_total[1m]))"},
		{"selective", `fabric_switch_transmit_bytes_total{switch_id="` + historytest.BenchMiddle() + `"}`},
	} {
		for _, s := range []struct {
			name string
			q    storage.Queryable
		}{
			{"history", history.Union(h)},
			{"merged", merge(history.Union(h), self)},
		} {
			b.Run(q.name+"/"+s.name, func(b *testing.B) {
				for b.Loop() {
					qry, err := a.engine.NewInstantQuery(b.Context(), s.q, nil, q.query, at)
					if err != nil {
						b.Fatal(err)
					}
					if res := qry.Exec(b.Context()); res.Err != nil {
						b.Fatal(res.Err)
					}
					qry.Close()
				}
			})
		}
	}
}

// BenchmarkTSDBStatus measures /api/v1/status/tsdb over 300k series
// (100,000 switches, three metrics, 6 snapshots).
func BenchmarkTSDBStatus(b *testing.B) {
	h := history.New(time.Hour)
	historytest.AppendBenchFabric(b, h, historytest.BenchSwitches(), 6, []string{"Tx_Bytes", "Rx_Bytes", "Temperature_C"})
	a := New(history.NewSet(h), nil, Options{})
	req := httptest.NewRequest("GET", "/api/v1/status/tsdb", nil)
	for b.Loop() {
		if res := a.tsdbStatus(req); res.err != nil {
			b.Fatal(res.err)
		}
	}
}
