package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// loadOpenAPI loads and validates ../openapi.yaml and returns a router
// that finds its operations on serverURL.
func loadOpenAPI(t *testing.T, serverURL string) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return router
}

// checkOpenAPI sends a request and validates the real response against the
// operation it names in openapi.yaml (every status must be documented);
// validRequest also validates the request itself.
func checkOpenAPI(t *testing.T, router routers.Router, method, url string, status int, validRequest bool) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	// A 405 has no operation of its own: it is documented, and checked,
	// as an answer of the path's GET.
	lookup := req.Clone(context.Background())
	lookup.Method = http.MethodGet
	route, params, err := router.FindRoute(lookup)
	if err != nil {
		t.Fatalf("openapi.yaml has no operation for GET %s: %v", req.URL.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: lookup, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}}
	if validRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("request does not match openapi.yaml: %v", err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                in.Options,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%d answer does not match openapi.yaml: %v\n%.500s", resp.StatusCode, err, body)
	}
}

// TestOpenAPI validates real answers of every endpoint, for every status
// they give, against openapi.yaml: before the first snapshot and after.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	simAddr := FreeAddr(t)
	agg := StartAggregator(t, "--source.url=http://"+simAddr+"/counters", "--source.interval=200ms")
	router := loadOpenAPI(t, agg.URL)
	agg.Logs.WaitFor(t, 0, 1, 10*time.Second, "a failed poll", MsgIs(pollRejected))

	type check struct {
		method, path string
		status       int
		validRequest bool
	}
	run := func(t *testing.T, checks []check) {
		for _, c := range checks {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				checkOpenAPI(t, router, c.method, agg.URL+c.path, c.status, c.validRequest)
			})
		}
	}
	t.Run("before the first snapshot", func(t *testing.T) {
		run(t, []check{
			{http.MethodGet, "/-/healthy", http.StatusOK, true},
			{http.MethodGet, "/-/ready", http.StatusServiceUnavailable, true},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusServiceUnavailable, true},
			{http.MethodGet, "/telemetry/ListMetrics", http.StatusServiceUnavailable, true},
			{http.MethodGet, "/telemetry/GetMetric?metric_name=Rx_Bytes", http.StatusBadRequest, false},
		})
	})

	StartSimulator(t, "--web.listen-address="+simAddr, "--switches=20", "--incident-rate=0")
	WaitReady(t, agg, 10*time.Second)
	t.Run("with a snapshot", func(t *testing.T) {
		run(t, []check{
			{http.MethodGet, "/-/healthy", http.StatusOK, true},
			{http.MethodGet, "/-/ready", http.StatusOK, true},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=SW-05&metric_name=Rx_Bytes", http.StatusOK, true},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=SW-05&metric_name=Latency_Avg_uSec", http.StatusOK, true},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=SW-99&metric_name=Rx_Bytes", http.StatusNotFound, true},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=SW-05&metric_name=Nope", http.StatusNotFound, true},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=SW-05&switch_id=SW-06&metric_name=Rx_Bytes", http.StatusBadRequest, false},
			{http.MethodGet, "/telemetry/GetMetric?switch_id=%zz&metric_name=Rx_Bytes", http.StatusBadRequest, false},
			{http.MethodPost, "/telemetry/GetMetric?switch_id=SW-05&metric_name=Rx_Bytes", http.StatusMethodNotAllowed, true},
			{http.MethodGet, "/telemetry/ListMetrics", http.StatusOK, true},
			{http.MethodGet, "/telemetry/ListMetrics?switch_id=SW-02&switch_id=SW-01&metric_name=Rx_Bytes", http.StatusOK, true},
			{http.MethodGet, "/telemetry/ListMetrics?metric_name=Nope", http.StatusNotFound, true},
			{http.MethodGet, "/telemetry/ListMetrics?switch_id=", http.StatusBadRequest, false},
			{http.MethodPut, "/telemetry/ListMetrics", http.StatusMethodNotAllowed, true},
		})
	})
}
