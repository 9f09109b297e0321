package queryapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/fabrictelemetry/aggregator/cluster"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// BenchmarkFanoutTopk measures the query, topk(10, rate(x[1m])),
// over a fabric of historytest.BenchSwitches switches (6 polls): on one
// aggregator holding all of it, and on one of 2 and 4 partitioned
// replicas, which read the others by remote read over loopback HTTP.
func BenchmarkFanoutTopk(b *testing.B) {
	n := historytest.BenchSwitches()
	polls := make([]*snapshot.Snapshot, 6)
	for k := range polls {
		var prev *snapshot.Snapshot
		if k > 0 {
			prev = polls[k-1]
		}
		polls[k] = historytest.BenchSnapshot(b, n, k, []string{"Tx_Bytes"}, prev)
	}
	const query = "topk(10, rate(fabric_switch_transmit_bytes_total[1m]))"
	at := polls[len(polls)-1].Time()
	run := func(b *testing.B, a *API, q storage.Queryable) {
		b.ReportAllocs()
		for b.Loop() {
			qry, err := a.engine.NewInstantQuery(b.Context(), q, nil, query, at)
			if err != nil {
				b.Fatal(err)
			}
			res := qry.Exec(b.Context())
			if res.Err != nil || len(res.Warnings) > 0 {
				b.Fatal(res.Err, res.Warnings)
			}
			qry.Close()
		}
	}
	b.Run("single", func(b *testing.B) {
		h := history.New(time.Hour)
		for _, s := range polls {
			h.Append(s)
		}
		a := New(history.NewSet(h), nil, Options{})
		run(b, a, a.queryable)
	})
	for _, replicas := range []int{2, 4} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			rs := replicasOf(b, replicas, polls, Options{}, cluster.Options{Timeout: time.Minute})
			run(b, rs[0].API, rs[0].queryable)
		})
	}
}
