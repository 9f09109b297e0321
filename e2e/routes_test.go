package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/fabrictelemetry/aggregator/aggregator"
	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// route is one endpoint of the aggregator's router.
type route struct {
	Template string   // path template, e.g. /api/v1/label/{name}/values
	Prefix   bool     // a path prefix (pprof's index) rather than a path
	Methods  []string // the methods it is registered for; empty: any
}

// Path is a concrete path that reaches the route.
func (r route) Path() string {
	p := strings.ReplaceAll(r.Template, "{name}", "switch_id")
	if r.Prefix {
		p += "heap"
	}
	return p
}

// readOnlyPOST are the routes that take POST, as Prometheus's API does, so
// that long PromQL expressions fit in a form body. Each only evaluates or
// looks up; none writes.
// (Remote read, /api/v1/read, takes POST only, as Prometheus's does: it
// reads, and writes nothing.)
var readOnlyPOST = []string{
	"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/api/v1/query_exemplars",
	"/api/v1/format_query", "/api/v1/parse_query", "/api/v1/read",
}

// walked is one walk of the aggregator's routes.
type walked struct {
	once   sync.Once
	routes []route
	err    string
}

var httpRoutes, partitionedRoutes walked

// aggregatorRoutes returns every route of the aggregator as it serves, the
// landing page and the optional pprof routes included: it runs
// ListenAndServe in-process on a loopback port, against a source that is
// never there, walks the router once it listens, and stops it. A
// partitioned aggregator (partitioned true: a kafka://…?group= source at a
// broker address where none listens) also serves its peers' endpoints.
func aggregatorRoutes(t testing.TB, partitioned bool) []route {
	t.Helper()
	w, src := &httpRoutes, config.Source{
		Name: "default", URL: "http://127.0.0.1:1/counters", Format: config.FormatAuto, Shards: 1,
		Interval: model.Duration(time.Hour), Timeout: model.Duration(time.Second), MaxBytes: 1 << 20,
	}
	if partitioned {
		w = &partitionedRoutes
		src.URL = "kafka://127.0.0.1:1/polls?group=fabric"
	}
	w.once.Do(func() { w.routes, w.err = walkRoutes(src) })
	if w.err != "" {
		t.Fatal(w.err)
	}
	return w.routes
}

func walkRoutes(src config.Source) ([]route, string) {
	logs := &testproc.LockedBuffer{}
	agg, err := aggregator.New(aggregator.Config{
		Sources:     []config.Source{src},
		EnablePprof: true,
		ExternalURL: "http://127.0.0.1:1",
		Logger:      slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		return nil, "aggregator.New: " + err.Error()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs, systemd, webConfig := []string{"127.0.0.1:0"}, false, ""
	done := make(chan error, 1)
	go func() {
		done <- agg.ListenAndServe(ctx, &web.FlagConfig{
			WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &webConfig,
		})
	}()
	// Every route is registered before the server listens; the log line
	// (written under the buffer's lock) orders the walk after them.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "Listening on") {
		select {
		case err := <-done:
			return nil, "ListenAndServe returned early: " + errString(err) + "\n" + logs.String()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, "the in-process aggregator did not listen:\n" + logs.String()
		}
	}
	var routes []route
	walkErr := agg.Router().Walk(func(r *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		var rt route
		if tpl, err := r.GetPathTemplate(); err == nil {
			rt.Template = tpl
		} else if rt.Template, err = r.GetPathRegexp(); err != nil {
			return err
		}
		if re, err := r.GetPathRegexp(); err == nil && !strings.HasSuffix(re, "$") {
			rt.Prefix = true
		}
		rt.Methods, _ = r.GetMethods() // an error means no method matcher: any method
		routes = append(routes, rt)
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		return nil, "ListenAndServe: " + err.Error()
	}
	if walkErr != nil {
		return nil, "walking the router: " + walkErr.Error()
	}
	return routes, ""
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestRoutesAreReadOnly walks the aggregator's router: every route must be
// registered for GET (and HEAD, or POST for the PromQL endpoints, which
// only evaluate) and nothing else. A route without a method matcher, or
// with PUT, DELETE or PATCH, would be a way to change what is served.
func TestRoutesAreReadOnly(t *testing.T) {
	t.Parallel()
	want := []string{"/", "/-/healthy", "/-/ready", "/metrics", "/telemetry/GetMetric", "/telemetry/ListMetrics",
		"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels", "/debug/pprof/"}
	peers := []string{"/api/v1/read", "/api/v1/fabric/rows"} // partitioned mode only
	for _, partitioned := range []bool{false, true} {
		routes := aggregatorRoutes(t, partitioned)
		for _, w := range append(slices.Clone(want), peers...) {
			found := slices.ContainsFunc(routes, func(r route) bool { return r.Template == w })
			switch {
			case !found && (partitioned || !slices.Contains(peers, w)):
				t.Errorf("partitioned %v: route %s not found by the walk: the walk misses routes", partitioned, w)
			case found && !partitioned && slices.Contains(peers, w):
				t.Errorf("route %s served without partitioned mode", w)
			}
		}
		for _, r := range routes {
			if len(r.Methods) == 0 {
				t.Errorf("%s answers any method", r.Template)
				continue
			}
			for _, m := range r.Methods {
				switch {
				case m == http.MethodGet, m == http.MethodHead:
				case m == http.MethodPost && slices.Contains(readOnlyPOST, r.Template):
				default:
					t.Errorf("%s is registered for %s", r.Template, m)
				}
			}
		}
		t.Logf("partitioned %v: %d routes, all read-only", partitioned, len(routes))
	}
}

// TestNoEndpointChangesServedData sends every method but GET and HEAD, with
// a body that tries to overwrite a value, to every route of the running
// binary. Each must be refused with a JSON 405 naming the allowed methods,
// except POST on the PromQL endpoints, which evaluates the form like GET;
// and afterwards the REST answers and the exported series are exactly what
// they were.
func TestNoEndpointChangesServedData(t *testing.T) {
	t.Parallel()
	// A long interval keeps the source's body, and so the served data, still.
	sim := StartSimulator(t, "--switches=5", "--interval=1h", "--incident-rate=0", "--seed=8")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval=100ms", "--web.enable-pprof")
	WaitReady(t, agg, 20*time.Second)
	checkNoEndpointChanges(t, agg, aggregatorRoutes(t, false))
}

// TestNoEndpointChangesServedDataPartitioned is TestNoEndpointChangesServedData
// against a partitioned replica, whose peers' endpoints (rows, remote
// read) are routes too. A POST to /api/v1/read reads, like GET elsewhere:
// the form body is not a remote-read request, so it is refused as such
// (400), and nothing changes.
func TestNoEndpointChangesServedDataPartitioned(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	StartSimulator(t, "--switches=5", "--interval=1h", "--incident-rate=0", "--seed=8",
		"--kafka.brokers="+brokersOf(c), "--kafka.topic=polls", "--kafka.partitions=4")
	agg := StartAggregator(t, "--source.url=kafka://"+brokersOf(c)+"/polls?group=fabric", "--source.interval=1h",
		"--source.max-staleness=1h", "--web.listen-address="+FreeAddr(t), "--web.enable-pprof")
	WaitReady(t, agg, 60*time.Second)
	checkNoEndpointChanges(t, agg, aggregatorRoutes(t, true))
}

// checkNoEndpointChanges sends every method but GET and HEAD to every
// route of agg and checks that each is refused, or only reads, and that
// the served data is what it was.
func checkNoEndpointChanges(t *testing.T, agg *Process, routes []route) {
	t.Helper()
	beforeList := Get(t, agg.URL+"/telemetry/ListMetrics")
	beforeSeries := fabricSeries(t, agg)

	const overwrite = "switch_id,timestamp,Rx_Bytes\nSW-01,4102444800000,0\n"
	form := url.Values{"query": {"fabric_switch_receive_bytes_total"}, "match[]": {"fabric_switch_receive_bytes_total"},
		"start": {"0"}, "end": {"60"}, "step": {"15"}, "switch_id": {"SW-01"}, "metric_name": {"Rx_Bytes"}, "value": {"0"}}.Encode()
	methods := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace, http.MethodConnect}
	for _, r := range routes {
		for _, m := range methods {
			t.Run(m+" "+r.Path(), func(t *testing.T) {
				body, ctype := overwrite, "text/csv"
				if m == http.MethodPost {
					body, ctype = form, "application/x-www-form-urlencoded"
				}
				resp, err := rawExchange(agg.Addr, m+" "+r.Path()+" HTTP/1.1\r\nHost: "+agg.Addr+"\r\nContent-Type: "+ctype+
					"\r\nContent-Length: "+itoa(len(body))+"\r\nConnection: close\r\n\r\n"+body, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if m == http.MethodPost && r.Template == "/api/v1/read" {
					if resp.Status != http.StatusBadRequest {
						t.Errorf("status %d, want 400 (a form is not a remote-read request): %.300s", resp.Status, resp.Body)
					}
					return
				}
				if m == http.MethodPost && slices.Contains(readOnlyPOST, r.Template) {
					if resp.Status != http.StatusOK {
						t.Errorf("status %d, want 200 (read-only evaluation): %.300s", resp.Status, resp.Body)
					}
					return
				}
				if resp.Status != http.StatusMethodNotAllowed {
					t.Fatalf("status %d, want 405: %.300s", resp.Status, resp.Body)
				}
				var e struct{ Error string }
				if err := json.Unmarshal(resp.Body, &e); err != nil || e.Error == "" {
					t.Errorf("body %q is not a JSON error", resp.Body)
				}
				for _, allowed := range r.Methods {
					if !strings.Contains(resp.Header.Get("Allow"), allowed) {
						t.Errorf("Allow %q does not name %s", resp.Header.Get("Allow"), allowed)
					}
				}
			})
		}
	}

	afterList := Get(t, agg.URL+"/telemetry/ListMetrics")
	a, errA := decodeList(beforeList.Body)
	b, errB := decodeList(afterList.Body)
	if errA != nil || errB != nil {
		t.Fatalf("ListMetrics: %v, %v", errA, errB)
	}
	if err := sameSnapshot(a, b); err != nil {
		t.Errorf("ListMetrics changed: %v", err)
	}
	if afterSeries := fabricSeries(t, agg); !slices.Equal(beforeSeries, afterSeries) {
		t.Errorf("the exported fabric series changed:\nbefore %q\nafter  %q", beforeSeries, afterSeries)
	}
}

// fabricSeries is the data part of /metrics: the fabric_switch_* and
// fabric_port_* sample lines, sorted.
func fabricSeries(t testing.TB, agg *Process) []string {
	t.Helper()
	r := Get(t, agg.URL+"/metrics")
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: %d", r.Status)
	}
	var out []string
	for line := range strings.Lines(string(r.Body)) {
		if strings.HasPrefix(line, "fabric_switch_") || strings.HasPrefix(line, "fabric_port_") {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) == 0 {
		t.Fatal("no fabric series in /metrics")
	}
	slices.Sort(out)
	return out
}
