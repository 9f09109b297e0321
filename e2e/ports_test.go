package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// UFMCSV is one body of the simulator's /csv/metrics (UFM Telemetry's
// layout), read with encoding/csv independently of the aggregator's
// parser: every cell as text, rows keyed as the aggregator keys them
// (switch_id is the first word of node_description, or the node GUID).
type UFMCSV struct {
	Timestamp int64 // Unix microseconds
	Metrics   []string
	Switches  []string             // in string order
	Ports     map[string][]UFMPort // switch_id → its ports, numerically
}

// UFMPort is one row.
type UFMPort struct {
	Port, NodeGUID string
	Values         map[string]string // column → cell
}

// ufmIdentity are the columns that are not metrics.
var ufmIdentity = []string{"timestamp", "source_id", "tag", "node_guid", "port_guid", "port_num", "node_description"}

// TimeText is the timestamp as the REST API shows it.
func (u *UFMCSV) TimeText() string {
	return time.UnixMicro(u.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z")
}

// Port returns a switch's row of a port.
func (u *UFMCSV) Port(switchID, port string) (UFMPort, bool) {
	i := slices.IndexFunc(u.Ports[switchID], func(p UFMPort) bool { return p.Port == port })
	if i < 0 {
		return UFMPort{}, false
	}
	return u.Ports[switchID][i], true
}

func parseUFMCSV(body []byte) (*UFMCSV, error) {
	records, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(records) < 2 {
		return nil, fmt.Errorf("%d records", len(records))
	}
	header := records[0]
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, h := range ufmIdentity {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("no %s column in %q", h, header)
		}
	}
	u := &UFMCSV{Ports: map[string][]UFMPort{}}
	for _, h := range header {
		if !slices.Contains(ufmIdentity, h) {
			u.Metrics = append(u.Metrics, h)
		}
	}
	for _, rec := range records[1:] {
		ts, err := strconv.ParseInt(rec[col["timestamp"]], 10, 64)
		if err != nil {
			return nil, err
		}
		if u.Timestamp != 0 && ts != u.Timestamp {
			return nil, fmt.Errorf("two timestamps in one body: %d, %d", u.Timestamp, ts)
		}
		u.Timestamp = ts
		id, _, _ := strings.Cut(strings.TrimSpace(rec[col["node_description"]]), " ")
		if id == "" {
			id = rec[col["node_guid"]]
		}
		p := UFMPort{Port: rec[col["port_num"]], NodeGUID: rec[col["node_guid"]], Values: map[string]string{}}
		for _, m := range u.Metrics {
			p.Values[m] = rec[col[m]]
		}
		if _, ok := u.Ports[id]; !ok {
			u.Switches = append(u.Switches, id)
		}
		u.Ports[id] = append(u.Ports[id], p)
	}
	slices.Sort(u.Switches)
	for _, ports := range u.Ports {
		slices.SortFunc(ports, func(a, b UFMPort) int {
			x, _ := strconv.Atoi(a.Port)
			y, _ := strconv.Atoi(b.Port)
			return x - y
		})
	}
	return u, nil
}

// FetchUFMCSV reads the simulator's good UFM body.
func FetchUFMCSV(ctx context.Context, sim *Process) (*UFMCSV, error) {
	body, err := fetchGoodBody(ctx, sim, "/csv/metrics")
	if err != nil {
		return nil, err
	}
	return parseUFMCSV(body)
}

// portValueAnswer is GetMetric's one-value answer for a port.
type portValueAnswer struct {
	SwitchID   string          `json:"switch_id"`
	MetricName string          `json:"metric_name"`
	Port       string          `json:"port"`
	Value      json.RawMessage `json:"value"`
	Timestamp  string          `json:"timestamp"`
	AgeSeconds float64         `json:"age_seconds"`
}

// portsAnswer is GetMetric's answer for every port of a switch.
type portsAnswer struct {
	SwitchID   string `json:"switch_id"`
	MetricName string `json:"metric_name"`
	Ports      []struct {
		Port     string          `json:"port"`
		NodeGUID string          `json:"node_guid"`
		Value    json.RawMessage `json:"value"`
	} `json:"ports"`
	Timestamp  string  `json:"timestamp"`
	AgeSeconds float64 `json:"age_seconds"`
}

// portListAnswer is ListMetrics' answer with per-port rows.
type portListAnswer struct {
	Timestamp   string      `json:"timestamp"`
	AgeSeconds  json.Number `json:"age_seconds"`
	SwitchCount int         `json:"switch_count"`
	Switches    []struct {
		SwitchID string                     `json:"switch_id"`
		Metrics  map[string]json.RawMessage `json:"metrics"`
		Ports    []struct {
			Port     string                     `json:"port"`
			NodeGUID string                     `json:"node_guid"`
			Metrics  map[string]json.RawMessage `json:"metrics"`
		} `json:"ports"`
	} `json:"switches"`
}

// getJSON fetches a REST answer that must be a 200 and decodes it
// strictly: a member the test does not know is a failure.
func getJSON(t testing.TB, target string, into any) {
	t.Helper()
	r := Get(t, target)
	if r.Status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, r.Status, r.Body)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("GET %s: %v\n%.500s", target, err, r.Body)
	}
}

// sameCell checks a served value against a CSV cell: an empty cell is
// null in a one-value answer.
func sameCell(text string, raw json.RawMessage) error {
	if text == "" {
		if string(raw) != "null" {
			return fmt.Errorf("empty in CSV, served as %s", raw)
		}
		return nil
	}
	return sameValue(text, raw)
}

// sample picks n switches spread over the fabric, the first and last
// included.
func sample(ids []string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, ids[i*(len(ids)-1)/(n-1)])
	}
	return slices.Compact(out)
}

// TestPortsMatchSimulator polls the simulator's UFM endpoint (200 switches
// of 32 ports) and checks the per-port REST answers value for value
// against the body the simulator served: one port, every port, ListMetrics
// with and without port filters, and that REST serves the source's raw
// data words where /metrics serves bytes.
func TestPortsMatchSimulator(t *testing.T) {
	t.Parallel()
	// A long interval keeps the body still while the test compares it.
	sim := StartSimulator(t, "--switches=200", "--ports=32", "--interval=1h", "--incident-rate=0", "--seed=7")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/csv/metrics", "--source.interval=200ms", "--source.timeout=10s")
	WaitReady(t, agg, 60*time.Second)

	want, err := FetchUFMCSV(context.Background(), sim)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.Switches) != 200 {
		t.Fatalf("simulator serves %d switches, want 200", len(want.Switches))
	}
	for _, id := range want.Switches {
		if len(want.Ports[id]) != 32 {
			t.Fatalf("simulator serves %d ports of %s, want 32", len(want.Ports[id]), id)
		}
	}
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		var a portListAnswer
		getJSON(t, agg.URL+"/telemetry/ListMetrics?port=1&metric_name="+want.Metrics[0], &a)
		if a.Timestamp != want.TimeText() {
			return fmt.Errorf("aggregator at %s, simulator at %s", a.Timestamp, want.TimeText())
		}
		return nil
	})
	switches := sample(want.Switches, 9)

	t.Run("GetMetric with port", func(t *testing.T) {
		checked := 0
		for _, id := range switches {
			for _, port := range []string{"1", "2", "17", "32"} {
				row, _ := want.Port(id, port)
				for _, m := range want.Metrics {
					var got portValueAnswer
					getJSON(t, agg.URL+"/telemetry/GetMetric?"+url.Values{"switch_id": {id}, "metric_name": {m}, "port": {port}}.Encode(), &got)
					if got.SwitchID != id || got.MetricName != m || got.Port != port || got.Timestamp != want.TimeText() {
						t.Fatalf("GetMetric %s %s port %s answered %+v", id, m, port, got)
					}
					if err := sameCell(row.Values[m], got.Value); err != nil {
						t.Errorf("GetMetric %s %s port %s: %v", id, m, port, err)
					}
					checked++
				}
			}
		}
		t.Logf("%d values checked", checked)
	})

	t.Run("GetMetric every port", func(t *testing.T) {
		for _, id := range switches {
			for _, m := range want.Metrics {
				var got portsAnswer
				getJSON(t, agg.URL+"/telemetry/GetMetric?"+url.Values{"switch_id": {id}, "metric_name": {m}}.Encode(), &got)
				if got.SwitchID != id || got.MetricName != m || got.Timestamp != want.TimeText() {
					t.Fatalf("GetMetric %s %s answered %+v", id, m, got)
				}
				// Ports whose cell is empty are left out; the rest come in
				// port order.
				var wantPorts []UFMPort
				for _, p := range want.Ports[id] {
					if p.Values[m] != "" {
						wantPorts = append(wantPorts, p)
					}
				}
				if len(got.Ports) != len(wantPorts) {
					t.Fatalf("GetMetric %s %s: %d ports, CSV has %d with a value", id, m, len(got.Ports), len(wantPorts))
				}
				for i, p := range got.Ports {
					w := wantPorts[i]
					if p.Port != w.Port || p.NodeGUID != w.NodeGUID {
						t.Errorf("GetMetric %s %s: entry %d is port %s of %s, want port %s of %s", id, m, i, p.Port, p.NodeGUID, w.Port, w.NodeGUID)
					}
					if err := sameValue(w.Values[m], p.Value); err != nil {
						t.Errorf("GetMetric %s %s port %s: %v", id, m, p.Port, err)
					}
				}
			}
		}
	})

	t.Run("ListMetrics everything", func(t *testing.T) {
		var got portListAnswer
		getJSON(t, agg.URL+"/telemetry/ListMetrics", &got)
		if err := matchesUFM(&got, want, want.Switches, nil, want.Metrics); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ListMetrics port filter", func(t *testing.T) {
		var got portListAnswer
		getJSON(t, agg.URL+"/telemetry/ListMetrics?port=32&port=1", &got)
		if err := matchesUFM(&got, want, want.Switches, []string{"1", "32"}, want.Metrics); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ListMetrics all filters", func(t *testing.T) {
		ids := []string{switches[3], switches[0], switches[len(switches)-1]}
		metrics := []string{"PortXmitDataExtended", "VL15DroppedExtended", "SymbolErrorCounterExtended"}
		q := url.Values{"switch_id": ids, "metric_name": metrics, "port": {"5", "31", "5"}}
		var got portListAnswer
		getJSON(t, agg.URL+"/telemetry/ListMetrics?"+q.Encode(), &got)
		sorted := slices.Sorted(slices.Values(ids))
		if err := matchesUFM(&got, want, sorted, []string{"5", "31"}, metrics); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("errors", func(t *testing.T) {
		id := switches[1]
		for _, tt := range []struct {
			query string
			code  int
			msg   string
		}{
			{"switch_id=" + id + "&metric_name=PortXmitDataExtended&port=33", 404, `unknown port "33" for switch_id "` + id + `"`},
			{"switch_id=" + id + "&metric_name=PortXmitDataExtended&port=1&port=2", 400, `parameter "port" given more than once`},
			{"switch_id=" + id + "&metric_name=Rx_Bytes&port=1", 404, `unknown metric_name "Rx_Bytes"`},
		} {
			r := Get(t, agg.URL+"/telemetry/GetMetric?"+tt.query)
			var e struct{ Error string }
			if err := json.Unmarshal(r.Body, &e); err != nil || r.Status != tt.code || e.Error != tt.msg {
				t.Errorf("GetMetric?%s: %d %s, want %d %q", tt.query, r.Status, r.Body, tt.code, tt.msg)
			}
		}
	})

	t.Run("raw data words on REST, bytes on /metrics", func(t *testing.T) {
		id := switches[2]
		row, _ := want.Port(id, "7")
		var got portValueAnswer
		getJSON(t, agg.URL+"/telemetry/GetMetric?"+url.Values{"switch_id": {id}, "metric_name": {"PortXmitDataExtended"}, "port": {"7"}}.Encode(), &got)
		if string(got.Value) != row.Values["PortXmitDataExtended"] {
			t.Fatalf("REST serves %s, the source's cell is %s", got.Value, row.Values["PortXmitDataExtended"])
		}
		exported, err := scrapeValue(agg, "fabric_port_transmit_bytes_total", map[string]string{"switch_id": id, "port": "7"})
		if err != nil {
			t.Fatal(err)
		}
		words, _ := new(big.Float).SetString(string(got.Value))
		if bytes := new(big.Float).Mul(words, big.NewFloat(4)); bytes.Cmp(exported) != 0 {
			t.Errorf("/metrics has %s bytes, REST %s words: want ×4", exported.Text('g', 20), got.Value)
		}
	})

	t.Run("OpenAPI", func(t *testing.T) {
		router := loadOpenAPI(t, agg.URL)
		id := switches[4]
		for _, c := range []struct {
			path   string
			status int
			valid  bool
		}{
			{"/telemetry/GetMetric?switch_id=" + id + "&metric_name=PortRcvDataExtended&port=3", 200, true},
			{"/telemetry/GetMetric?switch_id=" + id + "&metric_name=VL15DroppedExtended&port=3", 200, true},
			{"/telemetry/GetMetric?switch_id=" + id + "&metric_name=VL15DroppedExtended", 200, true},
			{"/telemetry/GetMetric?switch_id=" + id + "&metric_name=PortXmitWaitExtended", 200, true},
			{"/telemetry/GetMetric?switch_id=" + id + "&metric_name=PortXmitWaitExtended&port=99", 404, true},
			{"/telemetry/GetMetric?switch_id=" + id + "&metric_name=PortXmitWaitExtended&port=", 400, false},
			{"/telemetry/ListMetrics?switch_id=" + id, 200, true},
			{"/telemetry/ListMetrics?port=2&port=3&metric_name=PortXmitDataExtended", 200, true},
			{"/telemetry/ListMetrics?port=99", 404, true},
		} {
			t.Run(c.path, func(t *testing.T) {
				checkOpenAPI(t, router, http.MethodGet, agg.URL+c.path, c.status, c.valid)
			})
		}
	})
}

// matchesUFM checks a ListMetrics answer against the CSV: exactly these
// switches in order, no switch-level metrics, each switch's rows of these
// ports (all when ports is nil) in port order with their node GUIDs, and
// every metric of metrics the CSV has a value for, nothing more.
func matchesUFM(a *portListAnswer, u *UFMCSV, switches, ports, metrics []string) error {
	if a.Timestamp != u.TimeText() {
		return fmt.Errorf("timestamp %s, CSV has %s", a.Timestamp, u.TimeText())
	}
	if a.SwitchCount != len(switches) || len(a.Switches) != len(switches) {
		return fmt.Errorf("switch_count %d with %d switches, want %d", a.SwitchCount, len(a.Switches), len(switches))
	}
	for i, sw := range a.Switches {
		if sw.SwitchID != switches[i] {
			return fmt.Errorf("switch %d is %s, want %s", i, sw.SwitchID, switches[i])
		}
		if len(sw.Metrics) != 0 {
			return fmt.Errorf("%s: switch-level metrics %v from a per-port source", sw.SwitchID, sw.Metrics)
		}
		var rows []UFMPort
		for _, p := range u.Ports[sw.SwitchID] {
			if ports == nil || slices.Contains(ports, p.Port) {
				rows = append(rows, p)
			}
		}
		if len(sw.Ports) != len(rows) {
			return fmt.Errorf("%s: %d ports, want %d", sw.SwitchID, len(sw.Ports), len(rows))
		}
		for j, p := range sw.Ports {
			w := rows[j]
			if p.Port != w.Port || p.NodeGUID != w.NodeGUID {
				return fmt.Errorf("%s: entry %d is port %s of %s, want port %s of %s", sw.SwitchID, j, p.Port, p.NodeGUID, w.Port, w.NodeGUID)
			}
			present := 0
			for _, m := range metrics {
				text := w.Values[m]
				raw, ok := p.Metrics[m]
				if text == "" {
					if ok {
						return fmt.Errorf("%s port %s %s: empty in CSV, served as %s", sw.SwitchID, p.Port, m, raw)
					}
					continue
				}
				present++
				if !ok {
					return fmt.Errorf("%s port %s %s: missing", sw.SwitchID, p.Port, m)
				}
				if err := sameValue(text, raw); err != nil {
					return fmt.Errorf("%s port %s %s: %w", sw.SwitchID, p.Port, m, err)
				}
			}
			if len(p.Metrics) != present {
				return fmt.Errorf("%s port %s: %d metrics served, CSV has %d", sw.SwitchID, p.Port, len(p.Metrics), present)
			}
		}
	}
	return nil
}

// scrapeValue reads one sample of /metrics: the series of the metric whose
// labels include these, which must be exactly one.
func scrapeValue(agg *Process, metric string, labels map[string]string) (*big.Float, error) {
	r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/metrics")
	if err != nil {
		return nil, err
	}
	var found []string
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		set, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		match := true
		for k, v := range labels {
			match = match && slices.Contains(strings.Split(set, ","), k+"="+strconv.Quote(v))
		}
		if match {
			found = append(found, strings.Fields(value)[0])
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("%d series of %s with %v on /metrics: %v", len(found), metric, labels, found)
	}
	f, _, err := big.ParseFloat(found[0], 10, 256, big.ToNearestEven)
	return f, err
}

// TestSwitchAndPortSources runs the aggregator over two sources of one
// simulated fabric, the switch matrix (/counters) and its UFM ports
// (/csv/metrics, with an extra label), and checks that REST serves both
// parts of the view: the seed's switch-level answers, and the ports beside
// them.
func TestSwitchAndPortSources(t *testing.T) {
	t.Parallel()
	sim := StartSimulator(t, "--switches=30", "--interval=1h", "--incident-rate=0", "--seed=11")
	cfg := filepath.Join(t.TempDir(), "sources.yml")
	if err := os.WriteFile(cfg, []byte(`sources:
  - name: switches
    url: `+sim.URL+`/counters
    format: matrix
  - name: ports
    url: `+sim.URL+`/csv/metrics
    format: ufm
    labels:
      fabric: east
`), 0o600); err != nil {
		t.Fatal(err)
	}
	agg := StartAggregator(t, "--config.file="+cfg, "--source.interval=200ms")
	WaitReady(t, agg, 30*time.Second)
	matrix, err := FetchSimCSV(context.Background(), sim)
	if err != nil {
		t.Fatal(err)
	}
	ufm, err := FetchUFMCSV(context.Background(), sim)
	if err != nil {
		t.Fatal(err)
	}
	id := matrix.IDs[4]
	// Both parts must be in: the port of a switch answers with the UFM
	// body's time.
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/telemetry/GetMetric?switch_id="+id+"&metric_name=PortXmitDataExtended&port=1")
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK || !bytes.Contains(r.Body, []byte(ufm.TimeText())) {
			return fmt.Errorf("%d %s", r.Status, r.Body)
		}
		return nil
	})

	t.Run("switch-level GetMetric", func(t *testing.T) {
		for _, m := range matrix.Metrics {
			var got struct {
				SwitchID   string          `json:"switch_id"`
				MetricName string          `json:"metric_name"`
				Value      json.RawMessage `json:"value"`
				Timestamp  string          `json:"timestamp"`
				AgeSeconds float64         `json:"age_seconds"`
			}
			getJSON(t, agg.URL+"/telemetry/GetMetric?"+url.Values{"switch_id": {id}, "metric_name": {m}}.Encode(), &got)
			if got.Timestamp != matrix.TimeText() {
				t.Errorf("%s: timestamp %s, the matrix is from %s", m, got.Timestamp, matrix.TimeText())
			}
			if err := sameCell(matrix.Values[id][m], got.Value); err != nil {
				t.Errorf("%s %s: %v", id, m, err)
			}
		}
	})

	t.Run("ports beside switch-level metrics", func(t *testing.T) {
		var got struct {
			Timestamp   string `json:"timestamp"`
			AgeSeconds  any    `json:"age_seconds"`
			SwitchCount int    `json:"switch_count"`
			Switches    []struct {
				SwitchID string                     `json:"switch_id"`
				Metrics  map[string]json.RawMessage `json:"metrics"`
				Ports    []map[string]any           `json:"ports"`
			} `json:"switches"`
		}
		getJSON(t, agg.URL+"/telemetry/ListMetrics?switch_id="+id+"&metric_name=Rx_Bytes&metric_name=PortRcvDataExtended", &got)
		if got.SwitchCount != 1 || len(got.Switches) != 1 {
			t.Fatalf("%+v", got)
		}
		sw := got.Switches[0]
		if err := sameValue(matrix.Values[id]["Rx_Bytes"], sw.Metrics["Rx_Bytes"]); err != nil || len(sw.Metrics) != 1 {
			t.Errorf("metrics %v: %v", sw.Metrics, err)
		}
		if len(sw.Ports) != len(ufm.Ports[id]) {
			t.Fatalf("%d ports, the UFM body has %d", len(sw.Ports), len(ufm.Ports[id]))
		}
		for i, p := range sw.Ports {
			w := ufm.Ports[id][i]
			if p["port"] != w.Port || p["node_guid"] != w.NodeGUID || p["fabric"] != "east" || len(p) != 4 {
				t.Errorf("port entry %v, want port %s, node_guid %s, fabric east, metrics", p, w.Port, w.NodeGUID)
			}
		}
	})
}
