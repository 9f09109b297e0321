package queryapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
)

// fuzzEndpoints are what FuzzQuery sends its parameters to, picked by its
// first argument; odd picks send them as a POST form to the endpoints that
// take one (all but the last).
var fuzzEndpoints = []string{
	"/api/v1/query",
	"/api/v1/query_range",
	"/api/v1/series",
	"/api/v1/labels",
	"/api/v1/label/switch_id/values",
}

// fuzzAPI serves two sources: the fixture history, and one whose old blocks
// are encoded, with a fabric label; timeouts and sample limits are small so
// that costly queries end quickly, as errors.
func fuzzAPI(tb testing.TB) *mux.Router {
	plain := fixtureHistory(tb)
	enc := history.New(time.Hour).WithCompression(history.Compression{RunBlocks: 2, Spread: 1, MinRun: 1, MinBatch: 1})
	for k := range 6 {
		enc.Append(historytest.WithFabric(tb, historytest.Fixture(tb, k), "east"))
	}
	a := New(history.NewSet(plain, enc), schema.Default(), Options{Timeout: 200 * time.Millisecond, MaxSamples: 20_000, MaxConcurrency: 2})
	a.now = func() time.Time { return t0.Add(50 * time.Second) }
	r := mux.NewRouter()
	a.Register(r)
	return r
}

// FuzzQuery sends arbitrary queries and parameters through the HTTP
// handlers. Whatever comes in, the answer must be Prometheus's JSON envelope
// with a status Prometheus would give: 200 with data, or an error with its
// type, 400 (bad data), 422 (execution) or 503 (timeout), never a panic and
// never a 500.
func FuzzQuery(f *testing.F) {
	for _, seed := range []struct {
		endpoint                                byte
		query, time, start, end, step, lookback string
	}{
		{0, "fabric_switch_transmit_bytes_total", "50", "", "", "", ""},
		{1, "rate(fabric_switch_transmit_bytes_total[1m])", "", "0", "70", "5", ""},
		{0, `sum by (fabric) ({__name__=~"fabric_.*", switch_id!="SW-01"})`, "1970-01-01T00:00:30Z", "", "", "", "1m"},
		{2, `fabric_switch_temperature_celsius{fabric="east"}`, "", "0", "60", "", ""},
	} {
		f.Add(seed.endpoint, seed.query, seed.time, seed.start, seed.end, seed.step, seed.lookback)
	}
	router := fuzzAPI(f)
	f.Fuzz(func(t *testing.T, endpoint byte, query, at, start, end, step, lookback string) {
		path := fuzzEndpoints[int(endpoint>>1)%len(fuzzEndpoints)]
		params := url.Values{"query": {query}, "match[]": {query}}
		for k, v := range map[string]string{"time": at, "start": start, "end": end, "step": step, "lookback_delta": lookback} {
			if v != "" {
				params.Set(k, v)
			}
		}
		var req *http.Request
		if endpoint&1 == 1 && path != fuzzEndpoints[len(fuzzEndpoints)-1] {
			req = httptest.NewRequest(http.MethodPost, path, strings.NewReader(params.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req = httptest.NewRequest(http.MethodGet, path+"?"+params.Encode(), nil)
		}
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, req)
		checkEnvelope(t, path, params, rec)
	})
}

// checkEnvelope fails unless rec holds a well-formed Prometheus answer.
func checkEnvelope(t *testing.T, path string, params url.Values, rec *httptest.ResponseRecorder) {
	t.Helper()
	var env struct {
		Status    string           `json:"status"`
		Data      *json.RawMessage `json:"data"`
		ErrorType string           `json:"errorType"`
		Error     string           `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s %v: %d, not JSON: %v\n%s", path, params, rec.Code, err, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %v: Content-Type %q", path, params, ct)
	}
	switch rec.Code {
	case http.StatusOK:
		if env.Status != "success" || env.Data == nil || env.ErrorType != "" {
			t.Fatalf("%s %v: 200 with %s", path, params, rec.Body)
		}
		if strings.HasSuffix(path, "/query") || strings.HasSuffix(path, "/query_range") {
			var data struct {
				ResultType string `json:"resultType"`
			}
			if err := json.Unmarshal(*env.Data, &data); err != nil || !strings.Contains("matrix vector scalar string", data.ResultType) || data.ResultType == "" {
				t.Fatalf("%s %v: result %s", path, params, *env.Data)
			}
		}
	case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusServiceUnavailable:
		want := map[int]errorType{http.StatusBadRequest: errorBadData, http.StatusUnprocessableEntity: errorExec, http.StatusServiceUnavailable: errorTimeout}[rec.Code]
		if env.Status != "error" || env.ErrorType != string(want) || env.Error == "" {
			t.Fatalf("%s %v: %d with %s", path, params, rec.Code, rec.Body)
		}
	default:
		t.Fatalf("%s %v: status %d: %s", path, params, rec.Code, rec.Body)
	}
}
