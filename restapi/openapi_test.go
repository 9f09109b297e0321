package restapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// TestOpenAPIFixture validates the handlers' answers over the fixtures
// (2^64-1, NaN and ±Inf as null, absent values; per-port rows with extra
// labels, one port from two sources, a switch two sources report) against
// ../openapi.yaml, requests included; the e2e tests do the same against the
// running binary.
func TestOpenAPIFixture(t *testing.T) {
	router := openAPIRouter(t)
	ready, notReady := newRouter(fixtureSnapshot(t), time.Second), newRouter(nil, time.Second)
	full, fabrics := viewRouter(fullView(t), time.Second), viewRouter(twoFabricsView(t), time.Second)
	tests := []struct {
		name   string
		h      http.Handler
		target string
		status int
	}{
		{"port", full, "/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended&port=10", 200},
		{"port absent", full, "/telemetry/GetMetric?switch_id=SW-01&metric_name=PortRcvDataExtended&port=2", 200},
		{"ports", full, "/telemetry/GetMetric?switch_id=SW-01&metric_name=SymbolErrorCounterExtended", 200},
		{"ports empty", full, "/telemetry/GetMetric?switch_id=SW-01&metric_name=VL15DroppedExtended", 200},
		{"port of two sources", full, "/telemetry/GetMetric?switch_id=SW-02&metric_name=PortXmitDataExtended&port=1", 200},
		{"switch-level beside ports", full, "/telemetry/GetMetric?switch_id=SW-10&metric_name=Rx_Bytes", 200},
		{"rows", fabrics, "/telemetry/GetMetric?switch_id=SW-01&metric_name=Power_W", 200},
		{"list with ports", full, "/telemetry/ListMetrics", 200},
		{"list port filter", full, "/telemetry/ListMetrics?port=1&port=2&metric_name=PortXmitDataExtended&switch_id=SW-02&switch_id=SW-20", 200},
		{"list rows", fabrics, "/telemetry/ListMetrics", 200},
		{"unknown port", full, "/telemetry/GetMetric?switch_id=SW-01&metric_name=PortXmitDataExtended&port=3", 404},
		{"port of a switch-level metric", full, "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes&port=1", 400},
		{"list unknown port", full, "/telemetry/ListMetrics?port=99", 404},
		{"uint64 max", ready, "/telemetry/GetMetric?switch_id=SW-10&metric_name=Rx_Bytes", 200},
		{"NaN", ready, "/telemetry/GetMetric?switch_id=SW-10&metric_name=Temperature_C", 200},
		{"negative", ready, "/telemetry/GetMetric?switch_id=SW-10&metric_name=Delta", 200},
		{"absent", ready, "/telemetry/GetMetric?switch_id=SW-02&metric_name=Rx_Bytes", 200},
		{"list", ready, "/telemetry/ListMetrics", 200},
		{"list filtered", ready, "/telemetry/ListMetrics?switch_id=SW-02&metric_name=Rx_Bytes", 200},
		{"unknown switch", ready, "/telemetry/GetMetric?switch_id=SW-99&metric_name=Rx_Bytes", 404},
		{"unknown filter", ready, "/telemetry/ListMetrics?metric_name=Nope", 404},
		{"missing", ready, "/telemetry/GetMetric?switch_id=SW-01", 400},
		{"not ready", notReady, "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", 503},
		{"list not ready", notReady, "/telemetry/ListMetrics", 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkOpenAPI(t, router, tt.h, tt.target, tt.status)
		})
	}
}

// openAPIRouter finds the operations of ../openapi.yaml, checked valid.
func openAPIRouter(t *testing.T) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: "http://example.com"}} // httptest.NewRequest's host
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return router
}

// checkOpenAPI sends a GET of target to h and checks the status, and the
// request and the answer against the description.
func checkOpenAPI(t *testing.T, router routers.Router, h http.Handler, target string, status int) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	w := serve(h, http.MethodGet, target)
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	opts := &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if status != http.StatusBadRequest {
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			t.Errorf("request does not match openapi.yaml: %v", err)
		}
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: w.Code, Header: w.Header(),
		Body: io.NopCloser(bytes.NewReader(w.Body.Bytes())), Options: opts,
	})
	if err != nil {
		t.Errorf("answer does not match openapi.yaml: %v\n%s", err, w.Body)
	}
}
