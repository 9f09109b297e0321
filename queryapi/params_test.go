package queryapi

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Prometheus 3.16's parseTime passes NaN, infinities and seconds beyond
// int64 milliseconds to int64 conversion and answers for whatever time that
// makes (time=NaN evaluates at -9223372036.854). The issue asks for 400s;
// Prometheus's own bounds, MinTime and MaxTime, stay accepted.
func TestParseTimeRefusesNonTimes(t *testing.T) {
	for _, s := range []string{"NaN", "nan", "Inf", "+Inf", "-Inf", "1e300", "-1e300", "9223372036854776", "-9223372036854776"} {
		if ts, err := parseTime(s); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", s, ts)
		}
	}
	for s, want := range map[string]time.Time{
		"123.123":                  time.Unix(123, 123e6),
		"-1":                       time.Unix(-1, 0),
		minTimeFormatted:           minTime,
		maxTimeFormatted:           maxTime,
		"2015-06-03T13:21:58.555Z": time.Date(2015, 6, 3, 13, 21, 58, 555e6, time.UTC),
		// The bounds as numbers, as a client that prints them in seconds
		// would send them.
		"-9223309901257974": minTime,
		"9223309901257974":  maxTime.Truncate(time.Second),
	} {
		if got, err := parseTime(s); err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
}

// Each request is refused as bad_data 400 naming its parameter.
func TestBadParameters(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	for _, tc := range []struct {
		name, path string
		params     []string
		wantMsg    string
	}{
		{"time NaN", "/api/v1/query", []string{"query", "1", "time", "NaN"}, `invalid parameter "time"`},
		{"time Inf", "/api/v1/query", []string{"query", "1", "time", "+Inf"}, `invalid parameter "time"`},
		{"time out of range", "/api/v1/query", []string{"query", "1", "time", "1e19"}, `invalid parameter "time"`},
		{"start NaN", "/api/v1/query_range", []string{"query", "1", "start", "NaN", "end", "10", "step", "1"}, `invalid parameter "start"`},
		{"labels end -Inf", "/api/v1/labels", []string{"end", "-Inf"}, `invalid parameter "end"`},
		{"series end Inf", "/api/v1/series", []string{"match[]", "fabric_switch_ports_up", "end", "Inf"}, `invalid parameter "end"`},
		{"repeated query", "/api/v1/query", []string{"query", "1", "query", "2"}, `invalid parameter "query": given 2 times`},
		{"repeated time", "/api/v1/query", []string{"query", "1", "time", "1", "time", "2"}, `invalid parameter "time": given 2 times`},
		{"repeated step", "/api/v1/query_range", []string{"query", "1", "start", "0", "end", "10", "step", "1", "step", "2"}, `invalid parameter "step": given 2 times`},
		{"repeated limit", "/api/v1/labels", []string{"limit", "1", "limit", "1"}, `invalid parameter "limit": given 2 times`},
		// Prometheus parses the query and fails on an empty one.
		{"exemplars without query", "/api/v1/query_exemplars", nil, "no expression found in input"},
		{"exemplars bad query", "/api/v1/query_exemplars", []string{"query", "sum(("}, "parse error"},
		{"exemplars bad start", "/api/v1/query_exemplars", []string{"query", "up", "start", "NaN"}, `invalid parameter "start"`},
		{"exemplars end before start", "/api/v1/query_exemplars", []string{"query", "up", "start", "10", "end", "5"}, "end timestamp must not be before start timestamp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkError(t, http.StatusBadRequest, "bad_data", tc.wantMsg)(a.get(t, tc.path, tc.params...))
		})
	}
	// match[] is repeatable.
	a.ok(t, "/api/v1/series", "match[]", "fabric_switch_ports_up", "match[]", "fabric_switch_ports")
	// A query given once in the URL and once in a POST body is given twice.
	req := httptest.NewRequest(http.MethodPost, "/api/v1/query?query=1", strings.NewReader("query=2"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	a.router.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "given 2 times") {
		t.Errorf("query in URL and body: %d %s", rec.Code, rec.Body)
	}
}

// multipartRequest builds a multipart/form-data POST of the given fields.
func multipartRequest(t *testing.T, path string, kv ...string) *http.Request {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i := 0; i+1 < len(kv); i += 2 {
		if err := mw.WriteField(kv[i], kv[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}

// Prometheus reads parameters with FormValue, which parses a
// multipart/form-data body too; some HTTP libraries send forms that way.
func TestMultipartForm(t *testing.T) {
	a := newTestAPI(t, fixtureHistory(t), Options{})
	serve := func(req *http.Request) (int, string) {
		rec := httptest.NewRecorder()
		a.router.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, body := serve(multipartRequest(t, "/api/v1/query", "query", "count(fabric_switch_transmit_bytes_total)", "time", unix(50*time.Second)))
	if code != http.StatusOK || !strings.Contains(body, `"3"`) {
		t.Errorf("instant query: %d %s", code, body)
	}
	code, body = serve(multipartRequest(t, "/api/v1/series", "match[]", `fabric_switch_transmit_bytes_total{switch_id="SW-02"}`, "match[]", `fabric_switch_transmit_bytes_total{switch_id="SW-03"}`))
	if code != http.StatusOK || !strings.Contains(body, "SW-02") || !strings.Contains(body, "SW-03") {
		t.Errorf("series: %d %s", code, body)
	}
	code, body = serve(multipartRequest(t, "/api/v1/query", "query", "1", "query", "2"))
	if code != http.StatusBadRequest || !strings.Contains(body, "given 2 times") {
		t.Errorf("repeated query: %d %s", code, body)
	}
	// A body over the bound is refused, not read into memory or spilled
	// to temporary files.
	code, body = serve(multipartRequest(t, "/api/v1/query", "query", "1", "padding", strings.Repeat("x", maxFormBytes)))
	if code != http.StatusBadRequest || !strings.Contains(body, "error parsing form values") {
		t.Errorf("oversized form: %d %.200s", code, body)
	}
}
