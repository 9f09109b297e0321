package exporter

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
)

// SelfGatherer gathers what /metrics serves besides the switch data: every
// self-metric and the view-level gauges, with /metrics' values, and no data
// family.
func TestSelfGathererIsMetricsWithoutData(t *testing.T) {
	store := smallFixture(t)
	e, srv := newServer(t, store)
	served := decode(t, scrape(t, srv.URL, "text/plain;version=0.0.4", "").body, expfmt.NewFormat(expfmt.TypeTextPlain))
	got := gatherMap(t, e.SelfGatherer())

	for name, mf := range served {
		if isData(name) && !strings.HasPrefix(name, "fabric_snapshot_") {
			if _, ok := got[name]; ok {
				t.Errorf("data family %s gathered", name)
			}
			continue
		}
		g, ok := got[name]
		if !ok {
			t.Errorf("%s served but not gathered", name)
			continue
		}
		if strings.HasPrefix(name, "fabric_snapshot_") && g.GetMetric()[0].GetGauge().GetValue() != mf.GetMetric()[0].GetGauge().GetValue() {
			t.Errorf("%s: gathered %v, served %v", name, g.GetMetric()[0], mf.GetMetric()[0])
		}
	}
	for _, name := range []string{"fabric_snapshot_timestamp_seconds", "fabric_snapshot_switches", "fabric_snapshot_series", "fabric_source_up", "fabric_ingest_duration_seconds", "fabric_aggregator_build_info"} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s not gathered", name)
		}
	}
}
