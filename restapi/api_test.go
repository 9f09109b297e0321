package restapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestGetMetric(t *testing.T) {
	h := newRouter(fixtureSnapshot(t), time.Second)
	for _, r := range fixtureRows {
		for col, metric := range fixtureColumns {
			c := r.values[col]
			t.Run(r.id+"/"+metric, func(t *testing.T) {
				w := serve(h, http.MethodGet, "/telemetry/GetMetric?"+url.Values{"switch_id": {r.id}, "metric_name": {metric}}.Encode())
				if w.Code != http.StatusOK {
					t.Fatalf("status %d: %s", w.Code, w.Body)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type %q", ct)
				}
				got := decodeObject(t, w.Body.Bytes())
				wantValue := c.json
				if wantValue == "" {
					wantValue = "null" // GetMetric of an absent value
				}
				want := map[string]string{
					"switch_id":   `"` + r.id + `"`,
					"metric_name": `"` + metric + `"`,
					"value":       wantValue,
					"timestamp":   `"` + snapTimeText + `"`,
					"age_seconds": "2.5",
				}
				if len(got) != len(want) {
					t.Errorf("fields %v, want exactly %v", keys(got), keys(want))
				}
				for k, v := range want {
					gv, ok := got[k]
					if !ok {
						t.Errorf("field %q missing: %s", k, w.Body)
						continue
					}
					s := raw(gv)
					if k == "age_seconds" {
						s = normalizeNumber(t, s)
					}
					if s != v {
						t.Errorf("%s = %s, want %s", k, s, v)
					}
				}
			})
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// normalizeNumber turns "2.500" into "2.5": the wire form of a float may
// carry trailing zeros.
func normalizeNumber(t *testing.T, s string) string {
	t.Helper()
	var f float64
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		t.Fatalf("%q is not a number", s)
	}
	b, _ := json.Marshal(f)
	return string(b)
}

func TestAgeSecondsFollowsClock(t *testing.T) {
	store := newStore(t)
	for _, d := range []time.Duration{0, 999 * time.Millisecond, 90 * time.Minute, -1500 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			h := routerAt(store, snapTime.Add(d))
			for _, target := range []string{"/telemetry/GetMetric?switch_id=SW-01&metric_name=Power_W", "/telemetry/ListMetrics"} {
				w := serve(h, http.MethodGet, target)
				var got struct {
					AgeSeconds float64 `json:"age_seconds"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				if got.AgeSeconds != d.Seconds() {
					t.Errorf("%s: age_seconds = %v, want %v", target, got.AgeSeconds, d.Seconds())
				}
			}
		})
	}
}

func TestBadParameters(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	tests := []struct {
		name  string
		query string
		want  []string // substrings of the message
		list  bool     // also a 400 for ListMetrics
	}{
		{"missing both", "", []string{"switch_id"}, false},
		{"missing metric_name", "switch_id=SW-01", []string{"metric_name"}, false},
		{"missing switch_id", "metric_name=Power_W", []string{"switch_id"}, false},
		{"empty switch_id", "switch_id=&metric_name=Power_W", []string{"switch_id", "empty"}, true},
		{"empty metric_name", "switch_id=SW-01&metric_name=", []string{"metric_name", "empty"}, true},
		{"switch_id without =", "switch_id&metric_name=Power_W", []string{"switch_id"}, true},
		{"repeated switch_id", "switch_id=SW-01&switch_id=SW-02&metric_name=Power_W", []string{"switch_id", "more than once"}, false},
		{"repeated same value", "switch_id=SW-01&metric_name=Power_W&metric_name=Power_W", []string{"metric_name", "more than once"}, false},
		{"bad percent in value", "switch_id=%zz&metric_name=Power_W", []string{"switch_id"}, true},
		{"bad percent in key", "switch_id=SW-01&metric_name=Power_W&%zz=1", []string{"encoded"}, true},
		{"truncated percent", "switch_id=SW-01%2&metric_name=Power_W", []string{"switch_id"}, true},
		{"semicolon", "switch_id=SW-01;metric_name=Power_W", []string{"semicolon"}, true},
		{"semicolon in another pair", "switch_id=SW-01&metric_name=Power_W&a=1;b=2", []string{"semicolon"}, true},
		{"long bad value", "switch_id=" + long + "%zz&metric_name=Power_W", []string{"switch_id"}, true},
		{"empty port", "switch_id=SW-01&metric_name=Power_W&port=", []string{"port", "empty"}, true},
		{"repeated port", "port=1&switch_id=SW-01&metric_name=Power_W&port=2", []string{"port", "more than once"}, false},
		{"bad percent in port", "switch_id=SW-01&metric_name=Power_W&port=%zz", []string{"port"}, true},
		{"missing with port", "switch_id=SW-01&port=1", []string{"metric_name"}, false},
		{"encoded invalid UTF-8 in value", "switch_id=SW-%FF%FE&metric_name=Power_W", []string{"switch_id", "UTF-8"}, true},
		{"raw invalid UTF-8 in value", "switch_id=SW-01&metric_name=Power_W\xff", []string{"metric_name", "UTF-8"}, true},
		{"surrogate in value", "switch_id=%ed%a0%80&metric_name=Power_W", []string{"switch_id", "UTF-8"}, true},
		{"invalid UTF-8 in key", "switch_id=SW-01&metric_name=Power_W&%ff=1", []string{"UTF-8"}, true},
	}
	for _, ready := range []bool{true, false} {
		name := "before first snapshot"
		snap := fixtureSnapshot(t)
		if ready {
			name = "with snapshot"
		} else {
			snap = nil
		}
		h := newRouter(snap, time.Second)
		t.Run(name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					w := serve(h, http.MethodGet, "/telemetry/GetMetric?"+tt.query)
					checkError(t, w, http.StatusBadRequest, tt.want...)
					if len(w.Body.String()) > 1024 {
						t.Errorf("error body of %d bytes echoes too much of the input", w.Body.Len())
					}
					if tt.list {
						checkError(t, serve(h, http.MethodGet, "/telemetry/ListMetrics?"+tt.query), http.StatusBadRequest, tt.want...)
					}
				})
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	h := newRouter(fixtureSnapshot(t), time.Second)
	tests := []struct {
		name   string
		target string
		want   []string
	}{
		{"GetMetric unknown switch", "/telemetry/GetMetric?switch_id=SW-99&metric_name=Power_W", []string{"switch_id", "SW-99"}},
		{"GetMetric unknown metric", "/telemetry/GetMetric?switch_id=SW-01&metric_name=Fan_RPM", []string{"metric_name", "Fan_RPM"}},
		{"GetMetric both unknown", "/telemetry/GetMetric?switch_id=SW-99&metric_name=Fan_RPM", []string{"SW-99"}},
		{"GetMetric switch id is case sensitive", "/telemetry/GetMetric?switch_id=sw-01&metric_name=Power_W", []string{"sw-01"}},
		{"GetMetric escaped name", "/telemetry/GetMetric?switch_id=SW%2D01%20x&metric_name=Power_W", []string{"SW-01 x"}},
		{"ListMetrics unknown switch", "/telemetry/ListMetrics?switch_id=SW-01&switch_id=SW-99", []string{"switch_id", "SW-99"}},
		{"ListMetrics unknown metric", "/telemetry/ListMetrics?metric_name=Power_W&metric_name=Fan_RPM", []string{"metric_name", "Fan_RPM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkError(t, serve(h, http.MethodGet, tt.target), http.StatusNotFound, tt.want...)
		})
	}
}

func TestNotReady(t *testing.T) {
	tests := []struct {
		retryAfter time.Duration
		want       string
	}{
		{10 * time.Second, "10"},
		{1500 * time.Millisecond, "2"},
		{200 * time.Millisecond, "1"},
		{0, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.retryAfter.String(), func(t *testing.T) {
			h := newRouter(nil, tt.retryAfter)
			for _, target := range []string{
				"/telemetry/GetMetric?switch_id=SW-01&metric_name=Power_W",
				"/telemetry/ListMetrics",
				"/telemetry/ListMetrics?switch_id=SW-01",
			} {
				w := serve(h, http.MethodGet, target)
				checkError(t, w, http.StatusServiceUnavailable)
				if got := w.Header().Get("Retry-After"); got != tt.want {
					t.Errorf("%s: Retry-After %q, want %q", target, got, tt.want)
				}
			}
		})
	}
}

// listAnswer is ListMetrics' answer with numbers kept as written.
type listAnswer struct {
	Timestamp   string      `json:"timestamp"`
	AgeSeconds  json.Number `json:"age_seconds"`
	SwitchCount json.Number `json:"switch_count"`
	Switches    []struct {
		SwitchID string                     `json:"switch_id"`
		Metrics  map[string]json.RawMessage `json:"metrics"`
	} `json:"switches"`
}

func decodeList(t *testing.T, w *httptest.ResponseRecorder) listAnswer {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(w.Body)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var a listAnswer
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("decoding ListMetrics: %v", err)
	}
	return a
}

func TestListMetrics(t *testing.T) {
	h := newRouter(fixtureSnapshot(t), time.Second)
	tests := []struct {
		name     string
		query    string
		switches []string
		metrics  []string // nil: all
	}{
		{"all", "", fixtureIDs, nil},
		{"one switch", "switch_id=SW-10", []string{"SW-10"}, nil},
		{"switch filter sorted", "switch_id=SW-10&switch_id=SW-01", []string{"SW-01", "SW-10"}, nil},
		{"switch filter repeated value", "switch_id=SW-02&switch_id=SW-02", []string{"SW-02"}, nil},
		{"one metric", "metric_name=Rx_Bytes", fixtureIDs, []string{"Rx_Bytes"}},
		{"two metrics", "metric_name=Temperature_C&metric_name=Delta&metric_name=Delta", fixtureIDs, []string{"Temperature_C", "Delta"}},
		{"both filters", "metric_name=Rx_Bytes&switch_id=SW-02&switch_id=SW-10&metric_name=Power_W", []string{"SW-02", "SW-10"}, []string{"Rx_Bytes", "Power_W"}},
		{"escaped filter", "switch_id=SW%2D01&metric_name=Power%5FW", []string{"SW-01"}, []string{"Power_W"}},
		{"unrelated parameter ignored", "foo=bar", fixtureIDs, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := decodeList(t, serve(h, http.MethodGet, "/telemetry/ListMetrics?"+tt.query))
			if a.Timestamp != snapTimeText {
				t.Errorf("timestamp %q, want %q", a.Timestamp, snapTimeText)
			}
			if f, _ := a.AgeSeconds.Float64(); f != 2.5 {
				t.Errorf("age_seconds %s, want 2.5", a.AgeSeconds)
			}
			if string(a.SwitchCount) != strconv.Itoa(len(tt.switches)) {
				t.Errorf("switch_count %s, want %d", a.SwitchCount, len(tt.switches))
			}
			var ids []string
			for _, s := range a.Switches {
				ids = append(ids, s.SwitchID)
			}
			if !slices.Equal(ids, tt.switches) {
				t.Fatalf("switches %q, want %q", ids, tt.switches)
			}
			metrics := tt.metrics
			if metrics == nil {
				metrics = fixtureColumns
			}
			for _, s := range a.Switches {
				want := map[string]string{}
				for _, m := range metrics {
					if c := fixtureCell(s.SwitchID, m); c.json != "" {
						want[m] = c.json
					}
				}
				if len(s.Metrics) != len(want) {
					t.Errorf("%s: %d metrics, want %d (absent values omitted): %v", s.SwitchID, len(s.Metrics), len(want), s.Metrics)
				}
				for m, v := range want {
					if got, ok := s.Metrics[m]; !ok || string(got) != v {
						t.Errorf("%s %s = %s (present %v), want %s", s.SwitchID, m, got, ok, v)
					}
				}
			}
		})
	}
}

func TestHead(t *testing.T) {
	srv := httptest.NewServer(newRouter(fixtureSnapshot(t), time.Second))
	t.Cleanup(srv.Close)
	for _, tt := range []struct {
		path string
		code int
	}{
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusOK},
		{"/telemetry/ListMetrics", http.StatusOK},
		{"/telemetry/GetMetric?switch_id=SW-01", http.StatusBadRequest},
		{"/telemetry/GetMetric?switch_id=SW-77&metric_name=Rx_Bytes", http.StatusNotFound},
	} {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := srv.Client().Head(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || len(body) != 0 {
				t.Errorf("HEAD: status %d body %q, want %d and no body", resp.StatusCode, body, tt.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	t.Run("POST is not routed", func(t *testing.T) {
		resp, err := srv.Client().Post(srv.URL+"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST: status %d, want 405", resp.StatusCode)
		}
	})
}

// TestOddInput sends odd and huge parameters: none may cause a 5xx or an
// answer that is not valid JSON.
func TestOddInput(t *testing.T) {
	odd := []string{
		"\x00", "\x1f\x7f", "é", "日本語", "🦀🦀", "\u2028\u2029", "\ufeff", "\xff\xfe", "\xc3\x28", "\xed\xa0\x80",
		`"`, `\`, `\u0000`, "<script>alert(1)</script>", "&amp;", "'; DROP TABLE", "%", "%%", "+", " ",
		"SW-01\n", "SW-01\x00", strings.Repeat("é", 70), strings.Repeat("🦀", 40) + "\xff",
		strings.Repeat("a", 1<<20), strings.Repeat("%41", 1000),
	}
	h := viewRouter(fullView(t), time.Second)
	for i, s := range odd {
		for _, param := range []string{"switch_id", "metric_name", "port"} {
			other := map[string]string{"switch_id": "SW-01", "metric_name": "PortXmitDataExtended", "port": "1"}
			q := url.Values{}
			for k, v := range other {
				q.Set(k, v)
			}
			q.Set(param, s)
			encoded := q.Encode()
			for _, target := range []string{
				"/telemetry/GetMetric?" + encoded,
				"/telemetry/ListMetrics?" + param + "=" + url.QueryEscape(s),
				"/telemetry/GetMetric?" + param + "=" + s, // not escaped at all
			} {
				name := param
				if len(target) > 60 {
					name += "/" + target[:60]
				}
				t.Run(name, func(t *testing.T) {
					w := httptest.NewRecorder()
					req := httptest.NewRequest(http.MethodGet, "/", nil)
					req.URL.Path, req.URL.RawQuery, _ = strings.Cut(target, "?")
					h.ServeHTTP(w, req)
					if w.Code >= 500 {
						t.Fatalf("odd input %d: status %d", i, w.Code)
					}
					if !json.Valid(w.Body.Bytes()) {
						t.Fatalf("odd input %d: status %d, invalid JSON %q", i, w.Code, w.Body.Bytes()[:min(w.Body.Len(), 200)])
					}
					if w.Code != http.StatusOK && w.Body.Len() > 1024 {
						t.Errorf("odd input %d: error of %d bytes", i, w.Body.Len())
					}
				})
			}
		}
	}
}

// FuzzGetMetric feeds arbitrary query strings to both endpoints over a view
// with switch-level and per-port data: never a 5xx, always valid JSON, and
// a 200 only with the parameters a valid question needs. More seeds, with
// port, are in testdata/fuzz/FuzzGetMetric.
func FuzzGetMetric(f *testing.F) {
	for _, s := range []string{
		"switch_id=SW-01&metric_name=Power_W", "switch_id=%zz", "a;b", "switch_id=\xff&metric_name=%00",
		"switch_id=SW-01&switch_id=SW-02", "metric_name=Rx_Bytes&switch_id=SW-10",
	} {
		f.Add(s)
	}
	h := viewRouter(fullView(f), time.Second)
	f.Fuzz(func(t *testing.T, rawQuery string) {
		for _, path := range []string{"/telemetry/GetMetric", "/telemetry/ListMetrics"} {
			w := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.URL.RawQuery = rawQuery
			h.ServeHTTP(w, req)
			if w.Code >= 500 || !json.Valid(w.Body.Bytes()) {
				t.Fatalf("%s?%q: status %d, body %q", path, rawQuery, w.Code, w.Body)
			}
			if w.Code == http.StatusOK && path == "/telemetry/GetMetric" {
				checkFuzzedAnswer(t, rawQuery, w.Body.Bytes())
			}
		}
	})
}

// checkFuzzedAnswer checks a 200 of GetMetric: it echoes the switch and
// metric asked for, and holds one value (with the port, when one was
// given and it matched one row) or a list.
func checkFuzzedAnswer(t *testing.T, rawQuery string, body []byte) {
	t.Helper()
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatalf("%q answered 200 though it does not parse: %v", rawQuery, err)
	}
	var a map[string]json.RawMessage
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatal(err)
	}
	str := func(key string) string {
		var s string
		_ = json.Unmarshal(a[key], &s)
		return s
	}
	if str("switch_id") != q.Get("switch_id") || str("metric_name") != q.Get("metric_name") {
		t.Fatalf("%q answered %s", rawQuery, body)
	}
	_, value := a["value"]
	_, port := a["port"]
	_, ports := a["ports"]
	_, rows := a["rows"]
	switch {
	case port && (str("port") != q.Get("port") || !value):
		t.Fatalf("%q answered %s", rawQuery, body)
	case q.Get("port") != "" && !port && !ports:
		t.Fatalf("%q answered neither the port nor a ports list: %s", rawQuery, body)
	case !value && !ports && !rows:
		t.Fatalf("%q answered no value and no list: %s", rawQuery, body)
	}
}
