package e2e

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/fabrictelemetry/aggregator/simulator"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// wantMetric is the issue's table, written out here rather than taken from
// the schema package, so that a rename there fails this test.
type wantMetric struct {
	name  string
	typ   dto.MetricType
	scale float64
}

var issueTable = map[string]wantMetric{
	"Latency_Avg_uSec":   {"fabric_switch_latency_average_seconds", dto.MetricType_GAUGE, 1e-6},
	"Latency_Max_uSec":   {"fabric_switch_latency_max_seconds", dto.MetricType_GAUGE, 1e-6},
	"Bandwidth_Util_Pct": {"fabric_switch_bandwidth_utilization_ratio", dto.MetricType_GAUGE, 0.01},
	"Buffer_Util_Pct":    {"fabric_switch_buffer_utilization_ratio", dto.MetricType_GAUGE, 0.01},
	"Rx_Bytes":           {"fabric_switch_receive_bytes_total", dto.MetricType_COUNTER, 1},
	"Tx_Bytes":           {"fabric_switch_transmit_bytes_total", dto.MetricType_COUNTER, 1},
	"Rx_Packets":         {"fabric_switch_receive_packets_total", dto.MetricType_COUNTER, 1},
	"Tx_Packets":         {"fabric_switch_transmit_packets_total", dto.MetricType_COUNTER, 1},
	"Rx_Errors":          {"fabric_switch_receive_errors_total", dto.MetricType_COUNTER, 1},
	"Tx_Discards":        {"fabric_switch_transmit_discards_total", dto.MetricType_COUNTER, 1},
	"Symbol_Errors":      {"fabric_switch_symbol_errors_total", dto.MetricType_COUNTER, 1},
	"Link_Down_Count":    {"fabric_switch_link_downed_total", dto.MetricType_COUNTER, 1},
	"Xmit_Wait":          {"fabric_switch_transmit_wait_total", dto.MetricType_COUNTER, 1},
	"Temperature_C":      {"fabric_switch_temperature_celsius", dto.MetricType_GAUGE, 1},
	"Power_W":            {"fabric_switch_power_watts", dto.MetricType_GAUGE, 1},
	"Ports_Up":           {"fabric_switch_ports_up", dto.MetricType_GAUGE, 1},
	"Ports_Total":        {"fabric_switch_ports", dto.MetricType_GAUGE, 1},
}

// startSimulator serves a steady simulated fabric that never ticks, so its
// body stays what the test reads.
func startSimulator(t *testing.T, switches int) (*simulator.Simulator, *httptest.Server) {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Switches: switches, Interval: time.Hour, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	return sim, srv
}

func sourceArgs(srv *httptest.Server) []string {
	return []string{"--source.url=" + srv.URL + "/counters", "--source.interval=100ms", "--source.timeout=2s", "--log.level=debug"}
}

// checkData asserts that every switch × column of the CSV body is in fams
// with the issue's name, type and scaled value.
func checkData(t *testing.T, csvBody []byte, fams map[string]*dto.MetricFamily) {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(csvBody)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header, checked := recs[0], 0
	for _, rec := range recs[1:] {
		id := rec[0]
		for i, col := range header {
			if col == "switch_id" || col == "timestamp" {
				continue
			}
			want, ok := issueTable[col]
			if !ok {
				t.Fatalf("simulator column %q is not in the issue's table", col)
			}
			if rec[i] == "" {
				continue // absent in the source, absent in /metrics
			}
			mf := fams[want.name]
			if mf == nil || mf.GetType() != want.typ {
				t.Fatalf("%s: family %s missing or of type %v, want %v", col, want.name, mf.GetType(), want.typ)
			}
			got, ok := value(fams, want.name, "switch_id", id)
			if scaled := testproc.Scaled(t, rec[i], want.scale); !ok || got != scaled {
				t.Errorf("%s{switch_id=%q} = %g (present %v), want %s × %g = %g", want.name, id, got, ok, rec[i], want.scale, scaled)
			}
			checked++
		}
	}
	if checked < (len(recs)-1)*len(issueTable)/2 {
		t.Fatalf("checked only %d values", checked)
	}
}

func TestMetricsEndToEnd(t *testing.T) {
	sim, src := startSimulator(t, 25)
	addr := startAggregator(t, sourceArgs(src)...)
	url := "http://" + addr + "/metrics"
	client := &http.Client{}
	t.Cleanup(client.CloseIdleConnections)

	// The source of the flags is named default.
	body := scrapeUntil(t, client, url, nil, "successful poll", func(f map[string]*dto.MetricFamily) bool {
		up, _ := value(f, "fabric_source_up", "source", "default")
		return up == 1
	})
	good := bytes.Clone(sim.Body())
	fams, _ := parseText(body)
	checkData(t, good, fams)
	if n, _ := value(fams, "fabric_snapshot_switches"); n != 25 {
		t.Errorf("fabric_snapshot_switches = %g, want 25", n)
	}
	promtoolCheck(t, body)

	// The source fails: the reason is counted, up goes to 0, data stays.
	resp, err := http.Post(src.URL+"/admin/mode?mode=ERROR_500", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	body = scrapeUntil(t, client, url, nil, "failed poll", func(f map[string]*dto.MetricFamily) bool {
		up, _ := value(f, "fabric_source_up", "source", "default")
		failures, _ := value(f, "fabric_ingest_failures_total", "source", "default", "reason", "http_status")
		return up == 0 && failures >= 1
	})
	fams, _ = parseText(body)
	checkData(t, good, fams)
	if v, _ := value(fams, "fabric_ingest_total", "result", "failure"); v < 1 {
		t.Errorf("fabric_ingest_total{result=\"failure\"} = %g", v)
	}
	if v, _ := value(fams, "fabric_ingest_failures_total", "reason", "timeout"); v != 0 {
		t.Errorf("HTTP 500s counted as timeouts: %g", v)
	}
}

func TestSchemaFile(t *testing.T) {
	_, src := startSimulator(t, 3)
	path := filepath.Join(t.TempDir(), "schema.csv")
	err := os.WriteFile(path, []byte("column,metric,type,scale,help\nPower_W,fabric_switch_power_milliwatts,gauge,1000,Power in milliwatts.\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	addr := startAggregator(t, append(sourceArgs(src), "--metrics.schema-file="+path)...)
	body := scrapeUntil(t, &http.Client{}, "http://"+addr+"/metrics", nil, "renamed metric", func(f map[string]*dto.MetricFamily) bool {
		_, ok := value(f, "fabric_switch_power_milliwatts")
		return ok
	})
	if bytes.Contains(body, []byte("fabric_switch_power_watts")) {
		t.Error("overridden name still served")
	}
}

func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	_, src := startSimulator(t, 3)
	webConfig, pool := testproc.WebConfig(t, t.TempDir(), "prometheus", "s3cret")
	addr := startAggregator(t, append(sourceArgs(src), "--web.config.file="+webConfig)...)
	client := tlsClient(pool)
	t.Cleanup(client.CloseIdleConnections)
	auth := func(user, pass string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(user, pass) }
	}
	url := "https://" + addr + "/metrics"
	scrapeUntil(t, client, url, auth("prometheus", "s3cret"), "metrics over TLS with basic auth", func(f map[string]*dto.MetricFamily) bool {
		_, ok := value(f, "fabric_switch_power_watts", "switch_id", "SW-01")
		return ok
	})
	for _, tc := range []struct {
		name   string
		url    string
		modify func(*http.Request)
		want   int
	}{
		{"no credentials", url, nil, http.StatusUnauthorized},
		{"wrong password", url, auth("prometheus", "guess"), http.StatusUnauthorized},
		{"other endpoints too", "https://" + addr + "/-/healthy", nil, http.StatusUnauthorized},
		{"plain HTTP", "http://" + addr + "/metrics", auth("prometheus", "s3cret"), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, err := get(t, client, tc.url, tc.modify)
			if err != nil || code != tc.want {
				t.Errorf("GET %s: %d (err %v), want %d", tc.url, code, err, tc.want)
			}
		})
	}
}
