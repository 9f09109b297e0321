package queryapi

import (
	"slices"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
)

// unionHistories is the union tests' sources, one history each (see
// historytest.UnionSources).
func unionHistories(t testing.TB) (east, west, ports *history.History) {
	east, west, ports = history.New(time.Hour), history.New(time.Hour), history.New(time.Hour)
	historytest.UnionSources(t, east, west, ports)
	return east, west, ports
}

// A failing source is not re-stamped: three minutes after its last snapshot
// its series still show that snapshot's time, and after the lookback delta
// they are gone while the other sources' series go on.
func TestUnionFailingSource(t *testing.T) {
	east, west, ports := unionHistories(t)
	a := newTestAPIs(t, []*history.History{east, west, ports}, Options{})
	ts := a.instant(t, `timestamp(fabric_switch_transmit_bytes_total{fabric="east"})`, 3*time.Minute)
	if len(ts) != 3 {
		t.Fatalf("east at t0+3m: %v", ts)
	}
	for id, v := range ts {
		if v != float64(t0.Add(50*time.Second).Unix()) {
			t.Errorf("%s stamped %v, want its last snapshot's t0+50s", id, v)
		}
	}
	// 50s + 5m lookback: east is gone, west is not.
	got := a.instant(t, "count by (fabric) (fabric_switch_transmit_bytes_total)", 5*time.Minute+51*time.Second)
	want := map[string]float64{`{"fabric":"west"}`: 2, `{}`: 1}
	checkVector(t, "count by (fabric)", got, want)
}

func TestUnionMetaEndpoints(t *testing.T) {
	east, west, ports := unionHistories(t)
	a := newTestAPIs(t, []*history.History{east, west, ports}, Options{})
	for _, tc := range []struct {
		path   string
		params []string
		want   []string
	}{
		{"/api/v1/labels", nil, []string{"__name__", "fabric", "port", "switch_id"}},
		// SW-05's empty fabric is no value.
		{"/api/v1/label/fabric/values", nil, []string{"east", "west"}},
		{"/api/v1/label/switch_id/values", nil, []string{"SW-01", "SW-02", "SW-03", "SW-04", "SW-05"}},
		{"/api/v1/label/switch_id/values", []string{"match[]", `{fabric="west"}`}, []string{"SW-01", "SW-04"}},
		{"/api/v1/label/switch_id/values", []string{"match[]", `fabric_switch_transmit_bytes_total{fabric=""}`}, []string{"SW-05"}},
		// After east stopped, only the other sources' values.
		{"/api/v1/label/switch_id/values", []string{"start", unix(time.Minute)}, []string{"SW-01", "SW-04", "SW-05"}},
		{"/api/v1/label/__name__/values", []string{"start", unix(time.Minute)}, []string{"fabric_port_transmit_bytes_total", "fabric_switch_transmit_bytes_total"}},
		{"/api/v1/labels", []string{"match[]", `{switch_id="SW-05"}`}, []string{"__name__", "switch_id"}},
	} {
		if got := decode[[]string](t, a.ok(t, tc.path, tc.params...)); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: got %v, want %v", tc.path, tc.params, got, tc.want)
		}
	}

	// The series of both fabrics named alike, in label order, and SW-05
	// without a fabric label.
	got := decode[[]map[string]string](t, a.ok(t, "/api/v1/series", "match[]", `fabric_switch_transmit_bytes_total{switch_id=~"SW-0[15]"}`))
	want := []map[string]string{
		{"__name__": "fabric_switch_transmit_bytes_total", "fabric": "east", "switch_id": "SW-01"},
		{"__name__": "fabric_switch_transmit_bytes_total", "fabric": "west", "switch_id": "SW-01"},
		{"__name__": "fabric_switch_transmit_bytes_total", "switch_id": "SW-05"},
	}
	if toJSON(got) != toJSON(want) {
		t.Errorf("series:\n got  %v\n want %v", got, want)
	}

	// Metadata of columns the table does not know, from any source.
	east.Append(historytest.WithFabric(t, historytest.Switches(t, t0.Add(60*time.Second), append(historytest.Columns(), "Fan_Speed_RPM"),
		historytest.Switch{ID: "SW-01", Values: map[string]float64{"Fan_Speed_RPM": 9000}}), "east"))
	meta := decode[map[string][]metadataEntry](t, a.ok(t, "/api/v1/metadata", "metric", "fabric_switch_fan_speed_rpm"))
	if len(meta) != 1 {
		t.Errorf("metadata of the east source's unknown column: %v", meta)
	}
}

// A source added to the set while the API serves (an aggregator fed from
// the poll log learns its sources from their first poll) is seen by the
// queries, the label and series endpoints and the metadata after it.
func TestSourceAddedAtRunTime(t *testing.T) {
	east, west, ports := unionHistories(t)
	set := history.NewSet(east)
	a := New(set, schema.Default(), Options{})
	a.now = func() time.Time { return t0.Add(50 * time.Second) }
	api := &testAPI{API: a, router: mux.NewRouter()}
	a.Register(api.router)

	const byFabric = "count by (fabric) (fabric_switch_transmit_bytes_total)"
	checkVector(t, "before", api.instant(t, byFabric, 30*time.Second), map[string]float64{`{"fabric":"east"}`: 2})
	if got := decode[[]string](t, api.ok(t, "/api/v1/label/fabric/values")); !slices.Equal(got, []string{"east"}) {
		t.Errorf("fabric values before: %v", got)
	}

	set.Add(west)
	set.Add(ports)
	checkVector(t, "after", api.instant(t, byFabric, 30*time.Second), map[string]float64{`{"fabric":"east"}`: 2, `{"fabric":"west"}`: 2, `{}`: 1})
	if got := decode[[]string](t, api.ok(t, "/api/v1/label/fabric/values")); !slices.Equal(got, []string{"east", "west"}) {
		t.Errorf("fabric values after: %v", got)
	}
	if got := api.instant(t, "count(fabric_port_transmit_bytes_total)", 30*time.Second); got[`{}`] != 2 {
		t.Errorf("the added per-port source's series: %v", got)
	}
	// status/tsdb's time bounds include the added sources' newer samples.
	if got := decode[map[string]any](t, api.ok(t, "/api/v1/status/tsdb")); got["headStats"] == nil {
		t.Errorf("status/tsdb: %v", got)
	} else if maxTime := got["headStats"].(map[string]any)["maxTime"].(float64); maxTime != float64(t0.Add(400*time.Second).UnixMilli()) {
		t.Errorf("status/tsdb maxTime %v, want the added sources' newest sample at t0+400s", maxTime)
	}
}
