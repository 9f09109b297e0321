package restapi

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The per-port fixture is a second source, one second older than the
// switch-level one: GetMetric answers with the time of the part a value
// comes from (age 3.5 s), ListMetrics with the view's newest (2.5 s).
var (
	portTime = snapTime.Add(-time.Second)
)

const portTimeText = "2026-11-25T19:29:59.123Z"

var (
	portLabels  = []string{snapshot.SwitchLabel, snapshot.PortLabel, "node_guid", "fabric"}
	portColumns = []string{"PortXmitDataExtended", "PortRcvDataExtended", "SymbolErrorCounterExtended", "VL15DroppedExtended"}
)

type fixtureRow struct {
	labels []string
	values []snapshot.Value // index for index with the columns; the zero Value is absent
}

var (
	absent = snapshot.Value{}
	u      = snapshot.UintValue
)

// portRows are out of order on purpose (port 10 must follow port 2). SW-01
// has three ports of one source; SW-02's port 1 comes from two sources
// that differ by their fabric label, and its port 2 has no value at all;
// SW-20 has ports only, and no node_guid.
var portRows = []fixtureRow{
	{[]string{"SW-01", "10", "0xaa", ""}, []snapshot.Value{u(102), u(202), absent, absent}},
	{[]string{"SW-01", "1", "0xaa", ""}, []snapshot.Value{u(100), u(200), u(0), absent}},
	{[]string{"SW-01", "2", "0xaa", ""}, []snapshot.Value{u(101), absent, snapshot.FloatValue(math.NaN()), absent}},
	{[]string{"SW-02", "2", "0xbb", "east"}, []snapshot.Value{absent, absent, absent, absent}},
	{[]string{"SW-02", "1", "0xbb", "west"}, []snapshot.Value{u(7), u(8), u(9), u(0)}},
	{[]string{"SW-02", "1", "0xbb", "east"}, []snapshot.Value{u(5), u(6), absent, absent}},
	{[]string{"SW-20", "1", "", ""}, []snapshot.Value{u(1 << 60), u(3), u(4), absent}},
}

func buildSnapshot(t testing.TB, at time.Time, labels, columns []string, rows []fixtureRow) *snapshot.Snapshot {
	t.Helper()
	b := snapshot.NewBuilder(labels, columns, len(rows))
	for _, r := range rows {
		row := b.AddRow(r.labels...)
		for col, v := range r.values {
			if v.Present() {
				b.Set(row, col, v)
			}
		}
	}
	s, err := b.Build(at, make([]schema.Metric, len(columns)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func portSnapshot(t testing.TB) *snapshot.Snapshot {
	return buildSnapshot(t, portTime, portLabels, portColumns, portRows)
}

// fullView is the switch-level fixture and the per-port one, as the
// aggregator publishes them.
func fullView(t testing.TB) *snapshot.View {
	return snapshot.NewView(fixtureSnapshot(t), portSnapshot(t))
}

// twoFabricsView has a switch reported by two switch-level sources (east
// and west, both with an SW-01), and a source whose extra label is called
// "value".
func twoFabricsView(t testing.TB) *snapshot.View {
	switches := buildSnapshot(t, snapTime, []string{snapshot.SwitchLabel, "fabric"}, []string{"Power_W", "Temperature_C"}, []fixtureRow{
		{[]string{"SW-01", "west"}, []snapshot.Value{u(260), absent}},
		{[]string{"SW-01", "east"}, []snapshot.Value{u(250), snapshot.FloatValue(40.5)}},
		{[]string{"SW-03", "east"}, []snapshot.Value{u(100), snapshot.FloatValue(30)}},
	})
	ports := buildSnapshot(t, snapTime, []string{snapshot.SwitchLabel, snapshot.PortLabel, "value"}, []string{"Rx"}, []fixtureRow{
		{[]string{"SW-03", "1", "v"}, []snapshot.Value{u(1)}},
	})
	return snapshot.NewView(switches, ports)
}

// checkJSON checks an answer's status, type and body against want,
// compared as JSON values: members in any order, arrays in order, integers
// digit for digit, other numbers as float64 (so 3.500 is 3.5).
func checkJSON(t testing.TB, w *httptest.ResponseRecorder, code int, want string) {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d: %s", w.Code, code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	got, wantV := decodeAny(t, w.Body.Bytes()), decodeAny(t, []byte(want))
	if !reflect.DeepEqual(got, wantV) {
		t.Errorf("answer\n%s\nwant\n%s", w.Body, want)
	}
}

func decodeAny(t testing.TB, body []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	if dec.More() {
		t.Fatalf("trailing data after the JSON value: %s", body)
	}
	return canonical(v)
}

func canonical(v any) any {
	switch v := v.(type) {
	case json.Number:
		if strings.ContainsAny(string(v), ".eE") {
			f, _ := v.Float64()
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return string(v)
	case []any:
		for i := range v {
			v[i] = canonical(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = canonical(v[k])
		}
	}
	return v
}

// metricAnswer is GetMetric's answer in the test's words.
func metricAnswer(switchID, metric, middle, timestamp, age string) string {
	return `{"switch_id":"` + switchID + `","metric_name":"` + metric + `",` + middle +
		`,"timestamp":"` + timestamp + `","age_seconds":` + age + `}`
}

func portAnswer(switchID, metric, middle string) string {
	return metricAnswer(switchID, metric, middle, portTimeText, "3.5")
}

func switchAnswer(switchID, metric, middle string) string {
	return metricAnswer(switchID, metric, middle, snapTimeText, "2.5")
}

func TestGetMetricPorts(t *testing.T) {
	full := viewRouter(fullView(t), time.Second)
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"switch-level beside ports", "switch_id=SW-01&metric_name=Rx_Bytes",
			switchAnswer("SW-01", "Rx_Bytes", `"value":9007199254740993`)},
		{"switch-level absent value is null", "switch_id=SW-02&metric_name=Rx_Bytes",
			switchAnswer("SW-02", "Rx_Bytes", `"value":null`)},
		{"one port", "switch_id=SW-01&metric_name=PortXmitDataExtended&port=1",
			portAnswer("SW-01", "PortXmitDataExtended", `"port":"1","value":100`)},
		{"port 10 after port 2", "port=10&switch_id=SW-01&metric_name=PortXmitDataExtended",
			portAnswer("SW-01", "PortXmitDataExtended", `"port":"10","value":102`)},
		{"one port, absent value is null", "switch_id=SW-01&metric_name=PortRcvDataExtended&port=2",
			portAnswer("SW-01", "PortRcvDataExtended", `"port":"2","value":null`)},
		{"one port, NaN is null", "switch_id=SW-01&metric_name=SymbolErrorCounterExtended&port=2",
			portAnswer("SW-01", "SymbolErrorCounterExtended", `"port":"2","value":null`)},
		{"escaped port", "switch_id=SW-01&metric_name=PortXmitDataExtended&port=%31",
			portAnswer("SW-01", "PortXmitDataExtended", `"port":"1","value":100`)},
		{"every port, in row order", "switch_id=SW-01&metric_name=PortXmitDataExtended",
			portAnswer("SW-01", "PortXmitDataExtended", `"ports":[`+
				`{"port":"1","node_guid":"0xaa","value":100},`+
				`{"port":"2","node_guid":"0xaa","value":101},`+
				`{"port":"10","node_guid":"0xaa","value":102}]`)},
		{"every port, absent values omitted", "switch_id=SW-01&metric_name=PortRcvDataExtended",
			portAnswer("SW-01", "PortRcvDataExtended", `"ports":[`+
				`{"port":"1","node_guid":"0xaa","value":200},`+
				`{"port":"10","node_guid":"0xaa","value":202}]`)},
		{"every port, NaN kept as null", "switch_id=SW-01&metric_name=SymbolErrorCounterExtended",
			portAnswer("SW-01", "SymbolErrorCounterExtended", `"ports":[`+
				`{"port":"1","node_guid":"0xaa","value":0},`+
				`{"port":"2","node_guid":"0xaa","value":null}]`)},
		{"no port has a value", "switch_id=SW-01&metric_name=VL15DroppedExtended",
			portAnswer("SW-01", "VL15DroppedExtended", `"ports":[]`)},
		{"one port from two sources is a list", "switch_id=SW-02&metric_name=PortXmitDataExtended&port=1",
			portAnswer("SW-02", "PortXmitDataExtended", `"ports":[`+
				`{"port":"1","node_guid":"0xbb","fabric":"east","value":5},`+
				`{"port":"1","node_guid":"0xbb","fabric":"west","value":7}]`)},
		{"one port from two sources, one value", "switch_id=SW-02&metric_name=SymbolErrorCounterExtended&port=1",
			portAnswer("SW-02", "SymbolErrorCounterExtended", `"ports":[{"port":"1","node_guid":"0xbb","fabric":"west","value":9}]`)},
		{"every port of two sources", "switch_id=SW-02&metric_name=PortRcvDataExtended",
			portAnswer("SW-02", "PortRcvDataExtended", `"ports":[`+
				`{"port":"1","node_guid":"0xbb","fabric":"east","value":6},`+
				`{"port":"1","node_guid":"0xbb","fabric":"west","value":8}]`)},
		{"switch with ports only, empty label left out", "switch_id=SW-20&metric_name=PortXmitDataExtended",
			portAnswer("SW-20", "PortXmitDataExtended", `"ports":[{"port":"1","value":1152921504606846976}]`)},
		{"one port of a switch with ports only", "switch_id=SW-20&metric_name=PortXmitDataExtended&port=1",
			portAnswer("SW-20", "PortXmitDataExtended", `"port":"1","value":1152921504606846976`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkJSON(t, serve(full, http.MethodGet, "/telemetry/GetMetric?"+tt.query), http.StatusOK, tt.want)
		})
	}
}

func TestGetMetricSeveralSwitchRows(t *testing.T) {
	h := viewRouter(twoFabricsView(t), time.Second)
	tests := []struct {
		name, query, want string
	}{
		{"a switch two sources report is a list", "switch_id=SW-01&metric_name=Power_W",
			switchAnswer("SW-01", "Power_W", `"rows":[{"fabric":"east","value":250},{"fabric":"west","value":260}]`)},
		{"absent values omitted", "switch_id=SW-01&metric_name=Temperature_C",
			switchAnswer("SW-01", "Temperature_C", `"rows":[{"fabric":"east","value":40.5}]`)},
		{"one source: the seed's answer, labels left out", "switch_id=SW-03&metric_name=Temperature_C",
			switchAnswer("SW-03", "Temperature_C", `"value":30`)},
		{"a label called value is left out", "switch_id=SW-03&metric_name=Rx",
			switchAnswer("SW-03", "Rx", `"ports":[{"port":"1","value":1}]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkJSON(t, serve(h, http.MethodGet, "/telemetry/GetMetric?"+tt.query), http.StatusOK, tt.want)
		})
	}
}

func TestGetMetricPortErrors(t *testing.T) {
	full := viewRouter(fullView(t), time.Second)
	switchOnly := newRouter(fixtureSnapshot(t), time.Second)
	tests := []struct {
		name  string
		h     http.Handler
		query string
		code  int
		want  string // the whole message
	}{
		{"unknown port", full, "switch_id=SW-01&metric_name=PortXmitDataExtended&port=3", 404,
			`unknown port "3" for switch_id "SW-01"`},
		{"port of another switch", full, "switch_id=SW-20&metric_name=PortXmitDataExtended&port=2", 404,
			`unknown port "2" for switch_id "SW-20"`},
		{"port is matched exactly", full, "switch_id=SW-01&metric_name=PortXmitDataExtended&port=01", 404,
			`unknown port "01" for switch_id "SW-01"`},
		{"port of a switch-level metric", full, "switch_id=SW-01&metric_name=Rx_Bytes&port=1", 400,
			`metric_name "Rx_Bytes" is a switch-level metric: it has no port, leave the port parameter out`},
		{"port without per-port data", switchOnly, "switch_id=SW-01&metric_name=Rx_Bytes&port=1", 400,
			`metric_name "Rx_Bytes" is a switch-level metric: it has no port, leave the port parameter out`},
		{"unknown switch with port", full, "switch_id=SW-99&metric_name=PortXmitDataExtended&port=1", 404,
			`unknown switch_id "SW-99"`},
		{"unknown metric with port", full, "switch_id=SW-01&metric_name=Nope&port=1", 404,
			`unknown metric_name "Nope"`},
		{"switch without ports, per-port metric", full, "switch_id=SW-10&metric_name=PortXmitDataExtended", 404,
			`switch_id "SW-10" has no metric_name "PortXmitDataExtended"`},
		{"switch without ports, per-port metric and port", full, "switch_id=SW-10&metric_name=PortXmitDataExtended&port=1", 404,
			`switch_id "SW-10" has no metric_name "PortXmitDataExtended"`},
		{"switch with ports only, switch-level metric", full, "switch_id=SW-20&metric_name=Rx_Bytes", 404,
			`switch_id "SW-20" has no metric_name "Rx_Bytes"`},
		{"repeated port", full, "switch_id=SW-01&metric_name=PortXmitDataExtended&port=1&port=2", 400,
			`parameter "port" given more than once`},
		{"repeated same port", full, "switch_id=SW-01&port=1&metric_name=PortXmitDataExtended&port=1", 400,
			`parameter "port" given more than once`},
		{"empty port", full, "switch_id=SW-01&metric_name=PortXmitDataExtended&port=", 400,
			`parameter "port" is empty`},
		{"port without =", full, "switch_id=SW-01&metric_name=PortXmitDataExtended&port", 400,
			`parameter "port" is empty`},
		{"badly encoded port", full, "switch_id=SW-01&metric_name=PortXmitDataExtended&port=%zz", 400,
			`badly encoded value of parameter "port"`},
		{"port alone", full, "port=1", 400, `missing parameter "switch_id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.h, http.MethodGet, "/telemetry/GetMetric?"+tt.query)
			checkJSON(t, w, tt.code, `{"error":`+strconv.Quote(tt.want)+`}`)
		})
	}
}

// TestSwitchLevelUnchanged: per-port data beside the switch-level
// snapshot changes no byte of the seed's switch-level GetMetric answers,
// nor the list entry of a switch without ports.
func TestSwitchLevelUnchanged(t *testing.T) {
	seed, full := newRouter(fixtureSnapshot(t), time.Second), viewRouter(fullView(t), time.Second)
	for _, r := range fixtureRows {
		for _, metric := range fixtureColumns {
			target := "/telemetry/GetMetric?switch_id=" + r.id + "&metric_name=" + metric
			want, got := serve(seed, http.MethodGet, target), serve(full, http.MethodGet, target)
			if got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("%s: %d %s, the seed's answer is %d %s", target, got.Code, got.Body, want.Code, want.Body)
			}
		}
	}
	for _, q := range []string{"switch_id=SW-10", "switch_id=SW-10&metric_name=Rx_Bytes&metric_name=Power_W"} {
		want, got := serve(seed, http.MethodGet, "/telemetry/ListMetrics?"+q), serve(full, http.MethodGet, "/telemetry/ListMetrics?"+q)
		if got.Body.String() != want.Body.String() {
			t.Errorf("ListMetrics?%s:\n%s\nthe seed's answer is\n%s", q, got.Body, want.Body)
		}
	}
}

// switchLevelJSON are the fixture's switch-level metrics objects.
const (
	sw01Metrics = `{"Rx_Bytes":9007199254740993,"Latency_Avg_uSec":0.5,"Temperature_C":41.25,"Delta":0,"Power_W":null}`
	sw02Metrics = `{"Latency_Avg_uSec":1e-7,"Temperature_C":1e+21,"Power_W":250}`
	sw10Metrics = `{"Rx_Bytes":18446744073709551615,"Latency_Avg_uSec":1.234,"Temperature_C":null,"Delta":-5,"Power_W":null}`
)

func listAnswerJSON(switches ...string) string {
	return `{"timestamp":"` + snapTimeText + `","age_seconds":2.5,"switch_count":` + strconv.Itoa(len(switches)) +
		`,"switches":[` + strings.Join(switches, ",") + `]}`
}

func TestListMetricsPorts(t *testing.T) {
	full := viewRouter(fullView(t), time.Second)
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"everything", "", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":`+sw01Metrics+`,"ports":[`+
				`{"port":"1","node_guid":"0xaa","metrics":{"PortXmitDataExtended":100,"PortRcvDataExtended":200,"SymbolErrorCounterExtended":0}},`+
				`{"port":"2","node_guid":"0xaa","metrics":{"PortXmitDataExtended":101,"SymbolErrorCounterExtended":null}},`+
				`{"port":"10","node_guid":"0xaa","metrics":{"PortXmitDataExtended":102,"PortRcvDataExtended":202}}]}`,
			`{"switch_id":"SW-02","metrics":`+sw02Metrics+`,"ports":[`+
				`{"port":"1","node_guid":"0xbb","fabric":"east","metrics":{"PortXmitDataExtended":5,"PortRcvDataExtended":6}},`+
				`{"port":"1","node_guid":"0xbb","fabric":"west","metrics":{"PortXmitDataExtended":7,"PortRcvDataExtended":8,"SymbolErrorCounterExtended":9,"VL15DroppedExtended":0}},`+
				`{"port":"2","node_guid":"0xbb","fabric":"east","metrics":{}}]}`,
			`{"switch_id":"SW-10","metrics":`+sw10Metrics+`}`,
			`{"switch_id":"SW-20","metrics":{},"ports":[`+
				`{"port":"1","metrics":{"PortXmitDataExtended":1152921504606846976,"PortRcvDataExtended":3,"SymbolErrorCounterExtended":4}}]}`)},
		{"port filter: only those ports, no switch-level metrics", "port=1", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{},"ports":[`+
				`{"port":"1","node_guid":"0xaa","metrics":{"PortXmitDataExtended":100,"PortRcvDataExtended":200,"SymbolErrorCounterExtended":0}}]}`,
			`{"switch_id":"SW-02","metrics":{},"ports":[`+
				`{"port":"1","node_guid":"0xbb","fabric":"east","metrics":{"PortXmitDataExtended":5,"PortRcvDataExtended":6}},`+
				`{"port":"1","node_guid":"0xbb","fabric":"west","metrics":{"PortXmitDataExtended":7,"PortRcvDataExtended":8,"SymbolErrorCounterExtended":9,"VL15DroppedExtended":0}}]}`,
			`{"switch_id":"SW-20","metrics":{},"ports":[`+
				`{"port":"1","metrics":{"PortXmitDataExtended":1152921504606846976,"PortRcvDataExtended":3,"SymbolErrorCounterExtended":4}}]}`)},
		{"several ports leave out switches without them", "port=10&port=2&metric_name=PortXmitDataExtended", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{},"ports":[`+
				`{"port":"2","node_guid":"0xaa","metrics":{"PortXmitDataExtended":101}},`+
				`{"port":"10","node_guid":"0xaa","metrics":{"PortXmitDataExtended":102}}]}`,
			`{"switch_id":"SW-02","metrics":{},"ports":[{"port":"2","node_guid":"0xbb","fabric":"east","metrics":{}}]}`)},
		{"all three filters", "switch_id=SW-01&port=10&metric_name=PortRcvDataExtended&port=10", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{},"ports":[{"port":"10","node_guid":"0xaa","metrics":{"PortRcvDataExtended":202}}]}`)},
		{"metric filter of both kinds", "switch_id=SW-01&metric_name=Rx_Bytes&metric_name=PortXmitDataExtended", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{"Rx_Bytes":9007199254740993},"ports":[` +
				`{"port":"1","node_guid":"0xaa","metrics":{"PortXmitDataExtended":100}},` +
				`{"port":"2","node_guid":"0xaa","metrics":{"PortXmitDataExtended":101}},` +
				`{"port":"10","node_guid":"0xaa","metrics":{"PortXmitDataExtended":102}}]}`)},
		{"switch-level metric filter leaves the ports out", "metric_name=Power_W", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{"Power_W":null}}`,
			`{"switch_id":"SW-02","metrics":{"Power_W":250}}`,
			`{"switch_id":"SW-10","metrics":{"Power_W":null}}`)},
		{"per-port metric filter leaves switches without ports out", "metric_name=VL15DroppedExtended", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{},"ports":[`+
				`{"port":"1","node_guid":"0xaa","metrics":{}},{"port":"2","node_guid":"0xaa","metrics":{}},{"port":"10","node_guid":"0xaa","metrics":{}}]}`,
			`{"switch_id":"SW-02","metrics":{},"ports":[`+
				`{"port":"1","node_guid":"0xbb","fabric":"east","metrics":{}},`+
				`{"port":"1","node_guid":"0xbb","fabric":"west","metrics":{"VL15DroppedExtended":0}},`+
				`{"port":"2","node_guid":"0xbb","fabric":"east","metrics":{}}]}`,
			`{"switch_id":"SW-20","metrics":{},"ports":[{"port":"1","metrics":{}}]}`)},
		{"a switch asked for is there without the metrics", "switch_id=SW-20&switch_id=SW-10&metric_name=Delta", listAnswerJSON(
			`{"switch_id":"SW-10","metrics":{"Delta":-5}}`,
			`{"switch_id":"SW-20","metrics":{}}`)},
		{"a switch asked for is there without the port", "switch_id=SW-20&switch_id=SW-01&port=2", listAnswerJSON(
			`{"switch_id":"SW-01","metrics":{},"ports":[{"port":"2","node_guid":"0xaa","metrics":{"PortXmitDataExtended":101,"SymbolErrorCounterExtended":null}}]}`,
			`{"switch_id":"SW-20","metrics":{}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkJSON(t, serve(full, http.MethodGet, "/telemetry/ListMetrics?"+tt.query), http.StatusOK, tt.want)
		})
	}
}

func TestListMetricsSeveralSwitchRows(t *testing.T) {
	h := viewRouter(twoFabricsView(t), time.Second)
	checkJSON(t, serve(h, http.MethodGet, "/telemetry/ListMetrics"), http.StatusOK, listAnswerJSON(
		`{"switch_id":"SW-01","metrics":{},"rows":[`+
			`{"fabric":"east","metrics":{"Power_W":250,"Temperature_C":40.5}},`+
			`{"fabric":"west","metrics":{"Power_W":260}}]}`,
		`{"switch_id":"SW-03","metrics":{"Power_W":100,"Temperature_C":30},"ports":[{"port":"1","metrics":{"Rx":1}}]}`))
}

func TestListMetricsPortErrors(t *testing.T) {
	full := viewRouter(fullView(t), time.Second)
	switchOnly := newRouter(fixtureSnapshot(t), time.Second)
	tests := []struct {
		name  string
		h     http.Handler
		query string
		code  int
		want  string
	}{
		{"unknown port", full, "port=1&port=99", 404, `unknown port "99"`},
		{"port of no asked switch", full, "switch_id=SW-20&port=2", 404, `unknown port "2" for switch_id "SW-20"`},
		{"port of a switch without ports", full, "switch_id=SW-10&port=1", 404, `unknown port "1" for switch_id "SW-10"`},
		{"port without per-port data", switchOnly, "port=1", 404, `unknown port "1"`},
		{"port filter and switch-level metric", full, "port=1&metric_name=PortXmitDataExtended&metric_name=Power_W", 400,
			`metric_name "Power_W" is a switch-level metric: it has no port, leave the port filter out`},
		{"unknown metric with port filter", full, "port=1&metric_name=Nope", 404, `unknown metric_name "Nope"`},
		{"unknown switch with port filter", full, "port=1&switch_id=SW-99", 404, `unknown switch_id "SW-99"`},
		{"empty port", full, "port=1&port=", 400, `parameter "port" is empty`},
		{"badly encoded port", full, "port=%zz", 400, `badly encoded value of parameter "port"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(tt.h, http.MethodGet, "/telemetry/ListMetrics?"+tt.query)
			checkJSON(t, w, tt.code, `{"error":`+strconv.Quote(tt.want)+`}`)
		})
	}
}

// countingLoader counts the loads of a view.
type countingLoader struct {
	view  *snapshot.View
	loads int
}

func (c *countingLoader) Load() *snapshot.View { c.loads++; return c.view }

// TestOneLoadPerRequest: every answer, error or not, comes from one load
// of the view, so it cannot mix two polls.
func TestOneLoadPerRequest(t *testing.T) {
	for _, target := range []string{
		"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes",
		"/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended",
		"/telemetry/GetMetric?switch_id=SW-02&metric_name=PortXmitDataExtended&port=1",
		"/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended&port=99",
		"/telemetry/ListMetrics",
		"/telemetry/ListMetrics?port=1&port=10",
		"/telemetry/ListMetrics?port=99",
	} {
		src := &countingLoader{view: fullView(t)}
		api := New(src, time.Second, func() time.Time { return clockAt })
		w := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, target, nil)
		if strings.Contains(target, "GetMetric") {
			api.GetMetric(w, req)
		} else {
			api.ListMetrics(w, req)
		}
		if src.loads != 1 {
			t.Errorf("%s: %d loads, want 1", target, src.loads)
		}
	}
}

// TestNotReadyEmptyView: a published view without any snapshot is not
// something to answer from yet.
func TestNotReadyEmptyView(t *testing.T) {
	h := viewRouter(snapshot.NewView(), 3*time.Second)
	for _, target := range []string{
		"/telemetry/GetMetric?switch_id=SW-01&metric_name=Power_W&port=1",
		"/telemetry/ListMetrics?port=1",
	} {
		w := serve(h, http.MethodGet, target)
		checkError(t, w, http.StatusServiceUnavailable)
		if got := w.Header().Get("Retry-After"); got != "3" {
			t.Errorf("%s: Retry-After %q", target, got)
		}
	}
}

// TestGetMetricAllocs keeps the switch-level lookup free of allocations,
// also with per-port data beside it (the race detector allocates, and
// drops pooled buffers, so it is skipped there).
func TestGetMetricAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not representative under -race")
	}
	store := &snapshot.Store{}
	store.PublishView(fullView(t))
	api := New(store, time.Second, nil)
	req := httptest.NewRequest(http.MethodGet, "/telemetry/GetMetric?switch_id=SW-10&metric_name=Rx_Bytes", nil)
	w := &discardWriter{header: http.Header{}}
	if n := testing.AllocsPerRun(100, func() { api.GetMetric(w, req) }); n != 0 || w.code != http.StatusOK {
		t.Errorf("switch-level GetMetric: status %d, %v allocations per request, want 0", w.code, n)
	}
}
