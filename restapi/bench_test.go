package restapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// benchSizes are the fabric sizes of the seed (50) and of the issue's
// load test (2,000).
var benchSizes = []int{50, 2000}

// simulatedStore holds the parsed simulator body for n switches, as the
// aggregator would serve it.
func simulatedStore(b *testing.B, n int) *snapshot.Store {
	b.Helper()
	sim, err := simulator.New(simulator.Config{Switches: n, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	sim.Tick(snapTime)
	snap, err := ingest.NewParser(schema.Default()).Parse(sim.Body(), snapTime)
	if err != nil {
		b.Fatal(err)
	}
	store := &snapshot.Store{}
	store.Publish(snap)
	return store
}

// portsStore holds the simulator's UFM body for n switches of 32 ports
// beside its switch matrix, as a view of both.
func portsStore(b *testing.B, n int) *snapshot.Store {
	b.Helper()
	sim, err := simulator.New(simulator.Config{Switches: n, Ports: 32, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	sim.Tick(snapTime)
	parser := ingest.NewParser(schema.Default())
	ports, err := parser.Parse(sim.UFMBody(), snapTime)
	if err != nil {
		b.Fatal(err)
	}
	switches := simulatedStore(b, n).Load().Single()
	store := &snapshot.Store{}
	store.PublishView(snapshot.NewView(switches, ports))
	return store
}

// discardWriter is the least a handler can write to: the header map is
// kept between requests, as net/http's is per connection, and the body is
// counted and dropped.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// benchHandler serves req with h in a loop into a discardWriter and fails
// unless the answer is a 200; the bytes per op are the answer's size.
func benchHandler(b *testing.B, h http.HandlerFunc, req *http.Request) {
	b.Helper()
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		w.n = 0
		h(w, req)
	}
	b.SetBytes(int64(w.n))
	if w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

// constantHandler is the baseline: a bare handler writing a constant JSON
// body, the floor any JSON endpoint pays.
func constantHandler(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = jsonContentType
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	}
}

// benchTargets returns the API and the baseline with the same answer size:
// the GetMetric handler and the constant handler, each alone and each
// mounted on a gorilla/mux router with the API's routes, as served.
func benchTargets(b *testing.B, n int) (req *http.Request, body []byte, targets []struct {
	name string
	h    http.Handler
}) {
	b.Helper()
	api := New(simulatedStore(b, n), time.Second, nil)
	id := fmt.Sprintf("SW-%0*d", max(2, len(fmt.Sprint(n))), n/2)
	req = httptest.NewRequest(http.MethodGet, "/telemetry/GetMetric?switch_id="+id+"&metric_name=Rx_Bytes", nil)
	rec := httptest.NewRecorder()
	api.GetMetric(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("GetMetric: %d %s", rec.Code, rec.Body)
	}
	body = rec.Body.Bytes()

	apiRouter := mux.NewRouter()
	api.Register(apiRouter)
	bare := constantHandler(body)
	bareRouter := mux.NewRouter()
	bareRouter.Handle("/telemetry/GetMetric", bare).Methods(http.MethodGet, http.MethodHead)
	bareRouter.Handle("/telemetry/ListMetrics", bare).Methods(http.MethodGet, http.MethodHead)
	targets = []struct {
		name string
		h    http.Handler
	}{
		{"handler", http.HandlerFunc(api.GetMetric)},
		{"bare", bare},
		{"router", apiRouter},
		{"bare_router", bareRouter},
	}
	return req, body, targets
}

// BenchmarkGetMetric is the handler against the bare baseline, in
// process: handler and bare measure the lookup and encoding alone (zero
// allocations is the aim), router and bare_router add gorilla/mux as served.
func BenchmarkGetMetric(b *testing.B) {
	for _, n := range benchSizes {
		req, body, targets := benchTargets(b, n)
		for _, tt := range targets {
			b.Run(fmt.Sprintf("switches=%d/%s", n, tt.name), func(b *testing.B) {
				w := &discardWriter{header: http.Header{}}
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					w.n = 0
					tt.h.ServeHTTP(w, req)
				}
				if w.code != http.StatusOK || w.n != len(body) {
					b.Fatalf("status %d, %d bytes, want 200 and %d", w.code, w.n, len(body))
				}
			})
		}
	}
}

// BenchmarkGetMetricHTTP compares the two over loopback: one real
// http.Server each (httptest.NewServer), a keep-alive client in a loop.
func BenchmarkGetMetricHTTP(b *testing.B) {
	for _, n := range benchSizes {
		req, body, targets := benchTargets(b, n)
		for _, tt := range targets[2:] { // as served: through the router
			srv := httptest.NewServer(tt.h)
			client := srv.Client()
			b.Run(fmt.Sprintf("switches=%d/%s", n, tt.name), func(b *testing.B) {
				creq, err := http.NewRequest(http.MethodGet, srv.URL+req.URL.RequestURI(), nil)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				for b.Loop() {
					resp, err := client.Do(creq)
					if err != nil {
						b.Fatal(err)
					}
					m, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK || int(m) != len(body) {
						b.Fatalf("status %d, %d bytes", resp.StatusCode, m)
					}
				}
			})
			client.CloseIdleConnections()
			srv.Close()
		}
	}
}

// BenchmarkListMetrics is the whole-fabric answer, for scale.
func BenchmarkListMetrics(b *testing.B) {
	for _, n := range benchSizes {
		api := New(simulatedStore(b, n), time.Second, nil)
		req := httptest.NewRequest(http.MethodGet, "/telemetry/ListMetrics", nil)
		b.Run(fmt.Sprintf("switches=%d", n), func(b *testing.B) {
			benchHandler(b, api.ListMetrics, req)
		})
	}
}

// BenchmarkGetMetricPorts is GetMetric over a view with switch-level and
// per-port data: the seed's switch-level question (still no allocation),
// one port, and every port of a switch (32).
func BenchmarkGetMetricPorts(b *testing.B) {
	for _, n := range benchSizes {
		api := New(portsStore(b, n), time.Second, nil)
		id := fmt.Sprintf("SW-%0*d", max(2, len(fmt.Sprint(n))), n/2)
		for _, q := range []struct{ name, query string }{
			{"switch", "metric_name=Rx_Bytes"},
			{"port", "metric_name=PortXmitDataExtended&port=7"},
			{"ports", "metric_name=PortXmitDataExtended"},
		} {
			req := httptest.NewRequest(http.MethodGet, "/telemetry/GetMetric?switch_id="+id+"&"+q.query, nil)
			b.Run(fmt.Sprintf("switches=%d/%s", n, q.name), func(b *testing.B) {
				benchHandler(b, api.GetMetric, req)
			})
		}
	}
}

// BenchmarkListMetricsPorts is the whole fabric with 32 ports a switch,
// and one port of every switch.
func BenchmarkListMetricsPorts(b *testing.B) {
	for _, n := range benchSizes {
		api := New(portsStore(b, n), time.Second, nil)
		for _, q := range []struct{ name, query string }{{"all", ""}, {"port", "port=7"}} {
			req := httptest.NewRequest(http.MethodGet, "/telemetry/ListMetrics?"+q.query, nil)
			b.Run(fmt.Sprintf("switches=%d/%s", n, q.name), func(b *testing.B) {
				benchHandler(b, api.ListMetrics, req)
			})
		}
	}
}
