package restapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/cluster"
)

// BenchmarkFanoutGetMetric measures GetMetric on one of two partitioned
// replicas of the 2,000-switch fabric with 32 ports a switch: for a switch
// it holds (switch-level row and ports), as on one box, and for one the
// other replica holds, asked for its rows over loopback HTTP. Then
// ListMetrics of the whole fabric, on one box and on a replica.
func BenchmarkFanoutGetMetric(b *testing.B) {
	view := portsStore(b, 2000).Load()
	replicas := restReplicas(b, view, 2, cluster.Options{Timeout: time.Minute})
	m := replicas[0].m
	var local, remote string
	for _, id := range view.Parts()[0].Switches() {
		mine := m.Owner(fanoutSources[0], id) == m.SelfURL && m.Owner(fanoutSources[1], id) == m.SelfURL
		theirs := m.Owner(fanoutSources[0], id) != m.SelfURL && m.Owner(fanoutSources[1], id) != m.SelfURL
		if mine && local == "" {
			local = id
		}
		if theirs && remote == "" {
			remote = id
		}
	}
	get := func(b *testing.B, h http.Handler, target string) {
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
			if w.Code != http.StatusOK || w.Body.Len() == 0 {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	}
	for _, metric := range []string{"Latency_Avg_uSec", "PortXmitDataExtended"} {
		b.Run("single/"+metric, func(b *testing.B) {
			get(b, viewRouter(view, time.Second), "/telemetry/GetMetric?switch_id="+local+"&metric_name="+metric)
		})
	}
	for _, sw := range []struct{ name, id string }{{"local", local}, {"peer", remote}} {
		for _, metric := range []string{"Latency_Avg_uSec", "PortXmitDataExtended"} {
			b.Run(sw.name+"/"+metric, func(b *testing.B) {
				get(b, replicas[0].router, "/telemetry/GetMetric?switch_id="+sw.id+"&metric_name="+metric)
			})
		}
	}
	b.Run("ListMetrics/single", func(b *testing.B) { get(b, viewRouter(view, time.Second), "/telemetry/ListMetrics") })
	b.Run("ListMetrics/replica", func(b *testing.B) { get(b, replicas[0].router, "/telemetry/ListMetrics") })
}
