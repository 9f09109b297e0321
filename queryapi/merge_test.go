package queryapi

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/promql/promqltest"
)

// The self-metrics store is queried with the histories: queries, series,
// label names and values, and the TSDB status see both.
func TestSelfMetricsQueriedWithHistory(t *testing.T) {
	self := promqltest.LoadedStorage(t, `
load 10s
  up{job="fabric-aggregator", instance="agg:8080"} 1x5
  fabric_snapshot_timestamp_seconds{job="fabric-aggregator", instance="agg:8080"} 0+10x5
`)
	a := newTestAPI(t, fixtureHistory(t), Options{SelfMetrics: self})

	if got := a.instant(t, "time() - fabric_snapshot_timestamp_seconds", 45e9); len(got) != 1 || got[`{"instance":"agg:8080","job":"fabric-aggregator"}`] != 5 {
		t.Errorf("snapshot age: %v", got)
	}
	if got := a.instant(t, `count({__name__=~"fabric_.*|up"})`, 50e9); got["{}"] != 9+2 {
		t.Errorf("data and self series: %v", got)
	}
	names := decode[[]string](t, a.ok(t, "/api/v1/label/__name__/values"))
	for _, n := range []string{"up", "fabric_snapshot_timestamp_seconds", "fabric_switch_transmit_bytes_total"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s not among the names %v", n, names)
		}
	}
	if jobs := decode[[]string](t, a.ok(t, "/api/v1/label/job/values")); !slices.Equal(jobs, []string{"fabric-aggregator"}) {
		t.Errorf("jobs %v", jobs)
	}
	if series := decode[[]map[string]string](t, a.ok(t, "/api/v1/series", "match[]", `{job="fabric-aggregator"}`)); len(series) != 2 {
		t.Errorf("series %v", series)
	}
	if st := decode[tsdbStatus](t, a.ok(t, "/api/v1/status/tsdb")); st.HeadStats.NumSeries != 9+2 {
		t.Errorf("TSDB status: %+v", st.HeadStats)
	}
}
