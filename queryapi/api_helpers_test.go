package queryapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/schema"
)

// envelope is Prometheus's response, decoded loosely so a test can see
// which keys are there.
type envelope struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// t0 is the fixture's first snapshot time (historytest.T0), by the short
// name the tests and their comments use.
var t0 = historytest.T0

// fixtureHistory is the fixture fabric's six snapshots in a history.
func fixtureHistory(tb testing.TB) *history.History {
	return historytest.FixtureHistory(tb, history.New(time.Hour))
}

type testAPI struct {
	*API
	router *mux.Router
}

// newTestAPI serves one history with the clock at the fixture's newest
// snapshot.
func newTestAPI(t *testing.T, h *history.History, opts Options) *testAPI {
	t.Helper()
	return newTestAPIs(t, []*history.History{h}, opts)
}

// newTestAPIs serves the histories of several sources.
func newTestAPIs(t *testing.T, hs []*history.History, opts Options) *testAPI {
	t.Helper()
	a := New(history.NewSet(hs...), schema.Default(), opts)
	a.now = func() time.Time { return t0.Add(50 * time.Second) }
	r := mux.NewRouter()
	a.Register(r)
	return &testAPI{API: a, router: r}
}

// do sends a request (a form body for POST) and decodes the envelope.
func (a *testAPI) do(t *testing.T, ctx context.Context, method, path string, params url.Values) (int, envelope) {
	t.Helper()
	var req *http.Request
	if method == http.MethodPost {
		req = httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(params.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequestWithContext(ctx, method, path+"?"+params.Encode(), nil)
	}
	rec := httptest.NewRecorder()
	a.router.ServeHTTP(rec, req)
	var env envelope
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s %s: response is not JSON: %v\n%s", method, path, err, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return rec.Code, env
}

func (a *testAPI) get(t *testing.T, path string, kv ...string) (int, envelope) {
	t.Helper()
	return a.do(t, context.Background(), http.MethodGet, path, values(kv...))
}

// ok sends a GET and returns the data of a successful answer.
func (a *testAPI) ok(t *testing.T, path string, kv ...string) json.RawMessage {
	t.Helper()
	code, env := a.get(t, path, kv...)
	return success(t, code, env)
}

// success fails the test unless the answer is a 200 success.
func success(t *testing.T, code int, env envelope) json.RawMessage {
	t.Helper()
	if code != http.StatusOK || env.Status != "success" {
		t.Fatalf("got %d %s %s: %s", code, env.Status, env.ErrorType, env.Error)
	}
	return env.Data
}

func values(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// queryResult is the data of a query answer.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

func decode[T any](t *testing.T, raw json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

// point reads a [time, "value"] pair.
func point(t *testing.T, p [2]any) (float64, float64) {
	t.Helper()
	ts, ok := p[0].(float64)
	s, ok2 := p[1].(string)
	if !ok || !ok2 {
		t.Fatalf("bad point %v", p)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ts, v
}

// instant runs an instant query and returns the vector by series key: the
// switch_id, or the whole label set when there is none.
func (a *testAPI) instant(t *testing.T, query string, at time.Duration) map[string]float64 {
	t.Helper()
	data := a.ok(t, "/api/v1/query", "query", query, "time", unix(at))
	res := decode[queryResult](t, data)
	if res.ResultType != "vector" {
		t.Fatalf("%s: result type %s", query, res.ResultType)
	}
	out := map[string]float64{}
	for _, s := range decode[[]vectorSample](t, res.Result) {
		ts, v := point(t, s.Value)
		if ts != float64(t0.Add(at).Unix()) {
			t.Errorf("%s: sample time %v", query, ts)
		}
		key := s.Metric["switch_id"]
		if key == "" {
			key = toJSON(s.Metric)
		}
		out[key] = v
	}
	return out
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// unix formats a fixture offset as the API's float seconds.
func unix(d time.Duration) string {
	return strconv.FormatFloat(float64(t0.Add(d).UnixMilli())/1000, 'f', -1, 64)
}
