package queryapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
)

func TestSeries(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	for _, tc := range []struct {
		name   string
		params []string
		want   []string // switch_id of each series, in order
	}{
		{"one matcher", []string{"match[]", "fabric_switch_transmit_bytes_total"}, []string{"SW-01", "SW-02", "SW-03"}},
		{"two matchers merged", []string{"match[]", `fabric_switch_transmit_bytes_total{switch_id="SW-02"}`, "match[]", `{__name__="fabric_switch_transmit_bytes_total",switch_id=~"SW-0[12]"}`}, []string{"SW-01", "SW-02"}},
		// Only SW-01 and SW-02 have samples in [t0+20s, t0+30s].
		{"time range", []string{"match[]", "fabric_switch_transmit_bytes_total", "start", unix(20 * time.Second), "end", unix(30 * time.Second)}, []string{"SW-01", "SW-02"}},
		{"limit", []string{"match[]", "fabric_switch_transmit_bytes_total", "limit", "2"}, []string{"SW-01", "SW-02"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, env := a.get(t, "/api/v1/series", tc.params...)
			got := decode[[]map[string]string](t, success(t, code, env))
			var ids []string
			for _, s := range got {
				if s["__name__"] != "fabric_switch_transmit_bytes_total" || len(s) != 2 {
					t.Errorf("series %v", s)
				}
				ids = append(ids, s["switch_id"])
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("got %v, want %v", ids, tc.want)
			}
			if wantWarn := tc.name == "limit"; (len(env.Warnings) > 0) != wantWarn {
				t.Errorf("warnings %v", env.Warnings)
			}
		})
	}
}

func TestLabelsEndpoints(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	allNames := []string{"fabric_switch_latency_average_seconds", "fabric_switch_temperature_celsius", "fabric_switch_transmit_bytes_total"}
	for _, tc := range []struct {
		path   string
		method string
		params []string
		want   []string
	}{
		{"/api/v1/labels", http.MethodGet, nil, []string{"__name__", "switch_id"}},
		{"/api/v1/labels", http.MethodPost, []string{"match[]", "fabric_switch_transmit_bytes_total"}, []string{"__name__", "switch_id"}},
		{"/api/v1/labels", http.MethodGet, []string{"match[]", "no_such_metric"}, []string{}},
		{"/api/v1/label/__name__/values", http.MethodGet, nil, allNames},
		{"/api/v1/label/switch_id/values", http.MethodGet, nil, []string{"SW-01", "SW-02", "SW-03"}},
		{"/api/v1/label/switch_id/values", http.MethodGet, []string{"start", unix(20 * time.Second), "end", unix(30 * time.Second)}, []string{"SW-01", "SW-02"}},
		{"/api/v1/label/switch_id/values", http.MethodGet, []string{"match[]", `fabric_switch_temperature_celsius{switch_id!="SW-01"}`}, []string{"SW-02", "SW-03"}},
		{"/api/v1/label/switch_id/values", http.MethodGet, []string{"limit", "1"}, []string{"SW-01"}},
		{"/api/v1/label/port/values", http.MethodGet, nil, []string{}},
		// Grafana escapes names that are not legacy-valid as U__.
		{"/api/v1/label/U__switch__id/values", http.MethodGet, nil, []string{"SW-01", "SW-02", "SW-03"}},
	} {
		code, env := a.do(t, t.Context(), tc.method, tc.path, values(tc.params...))
		if got := decode[[]string](t, success(t, code, env)); !slices.Equal(got, tc.want) {
			t.Errorf("%s %s %v: got %v, want %v", tc.method, tc.path, tc.params, got, tc.want)
		}
	}
}

func TestMetadata(t *testing.T) {
	h := fixtureHistory(t)
	// A column the schema does not know, as a gauge named after it.
	h.Append(historytest.Switches(t, t0.Add(60*time.Second), append(historytest.Columns(), "Fan_Speed_RPM"),
		historytest.Switch{ID: "SW-01", Values: map[string]float64{"Fan_Speed_RPM": 9000}}))
	a := newTestAPI(t, h, Options{})

	all := decode[map[string][]metadataEntry](t, a.ok(t, "/api/v1/metadata"))
	tx := all["fabric_switch_transmit_bytes_total"]
	if len(tx) != 1 || tx[0].Type != "counter" || !strings.Contains(tx[0].Help, "Tx_Bytes") {
		t.Errorf("transmit bytes: %+v", tx)
	}
	if lat := all["fabric_switch_latency_average_seconds"]; len(lat) != 1 || lat[0].Type != "gauge" {
		t.Errorf("latency: %+v", lat)
	}
	fan := all["fabric_switch_fan_speed_rpm"]
	if len(fan) != 1 || fan[0].Type != "gauge" || !strings.Contains(fan[0].Help, "Fan_Speed_RPM") {
		t.Errorf("unknown column: %+v", fan)
	}
	// Every table entry is listed, plus the fan.
	if want := len(schema.Default().Known()) + 1; len(all) != want {
		t.Errorf("%d metrics, want %d", len(all), want)
	}

	one := decode[map[string][]metadataEntry](t, a.ok(t, "/api/v1/metadata", "metric", "fabric_switch_ports_up"))
	if len(one) != 1 || one["fabric_switch_ports_up"][0].Type != "gauge" {
		t.Errorf("metric=: %+v", one)
	}
	if two := decode[map[string][]metadataEntry](t, a.ok(t, "/api/v1/metadata", "limit", "2")); len(two) != 2 {
		t.Errorf("limit=2: %d metrics", len(two))
	}
	if none := decode[map[string][]metadataEntry](t, a.ok(t, "/api/v1/metadata", "metric", "nope")); len(none) != 0 {
		t.Errorf("unknown metric: %+v", none)
	}
}

// What Grafana asks on start-up and from the settings page.
func TestStaticEndpoints(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	for path, want := range map[string]string{
		"/api/v1/query_exemplars": `[]`,
		"/api/v1/rules":           `{"groups":[]}`,
		"/api/v1/alerts":          `{"alerts":[]}`,
	} {
		if got := string(a.ok(t, path, "query", "x", "start", "0", "end", "1")); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	var info map[string]any
	if err := json.Unmarshal(a.ok(t, "/api/v1/status/buildinfo"), &info); err != nil {
		t.Fatal(err)
	}
	if _, ok := info["features"]; ok {
		t.Error("buildinfo has a features key: Grafana would take the server for Mimir")
	}
	for _, k := range []string{"version", "revision", "branch", "buildUser", "buildDate", "goVersion"} {
		if _, ok := info[k]; !ok {
			t.Errorf("buildinfo lacks %s: %v", k, info)
		}
	}
	flags := decode[map[string]string](t, a.ok(t, "/api/v1/status/flags"))
	if flags["query.timeout"] != "2m" || flags["query.max-samples"] != "20000000" ||
		flags["query.max-series"] != "500000" || flags["query.max-response-bytes"] != "512MiB" ||
		flags["query.max-history-series"] != "0" {
		t.Errorf("flags %v", flags)
	}
}
