package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSourceDownAtStartup starts the aggregator before its source: it must
// serve, say it is not ready, answer the API with 503 and Retry-After (and
// still 400 for a bad request), and become ready once the source is up.
func TestSourceDownAtStartup(t *testing.T) {
	t.Parallel()
	simAddr := FreeAddr(t)
	agg := StartAggregator(t, "--source.url=http://"+simAddr+"/counters", "--source.interval=200ms", "--source.timeout=1s")
	agg.Logs.WaitFor(t, 0, 2, 10*time.Second, "connection failures", MsgIs(pollRejected, "reason", "connection"))

	checks := []struct {
		path   string
		status int
		retry  bool
		json   bool
	}{
		{"/-/healthy", http.StatusOK, false, false},
		{"/-/ready", http.StatusServiceUnavailable, false, false},
		{"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusServiceUnavailable, true, true},
		{"/telemetry/ListMetrics", http.StatusServiceUnavailable, true, true},
		{"/telemetry/GetMetric?switch_id=SW-01", http.StatusBadRequest, false, true},
		{"/telemetry/GetMetric?switch_id=%zz&metric_name=Rx_Bytes", http.StatusBadRequest, false, true},
	}
	for _, c := range checks {
		t.Run(c.path, func(t *testing.T) {
			r := Get(t, agg.URL+c.path)
			if r.Status != c.status {
				t.Fatalf("status %d, want %d: %s", r.Status, c.status, r.Body)
			}
			if got := r.Header.Get("Retry-After"); c.retry && got != "1" {
				// One poll interval (200ms), rounded up to a whole second.
				t.Errorf("Retry-After %q, want 1", got)
			}
			if c.json {
				var e struct{ Error string }
				if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == "" {
					t.Errorf("body %s is not a JSON error", r.Body)
				}
			}
		})
	}

	StartSimulator(t, "--web.listen-address="+simAddr, "--switches=10", "--incident-rate=0")
	WaitReady(t, agg, 10*time.Second)
	if l := GetList(t, agg, ""); l.SwitchCount != 10 {
		t.Errorf("switch_count %d after the source came up, want 10", l.SwitchCount)
	}
}

// TestDemo runs the aggregator alone with --demo: its in-process simulator
// makes it ready with 50 switches.
func TestDemo(t *testing.T) {
	t.Parallel()
	agg := StartAggregator(t, "--demo", "--source.interval=200ms")
	WaitReady(t, agg, 20*time.Second)
	l := GetList(t, agg, "")
	if l.SwitchCount != 50 || len(l.Switches) != 50 {
		t.Fatalf("demo serves %d switches, want 50", l.SwitchCount)
	}
	if l.Switches[0].SwitchID != "SW-01" || l.Switches[49].SwitchID != "SW-50" {
		t.Errorf("demo switches %s … %s, want SW-01 … SW-50", l.Switches[0].SwitchID, l.Switches[49].SwitchID)
	}
	r := Get(t, agg.URL+"/telemetry/GetMetric?switch_id=SW-25&metric_name=Rx_Bytes")
	if r.Status != http.StatusOK {
		t.Errorf("GetMetric: %d %s", r.Status, r.Body)
	}
}

// TestRouting checks the router's own answers: JSON 404 for an unknown
// path and JSON 405 with Allow for a wrong method.
func TestRouting(t *testing.T) {
	t.Parallel()
	agg := StartAggregator(t, "--demo", "--source.interval=1s")
	tests := []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/telemetry/NoSuchThing", http.StatusNotFound},
		{http.MethodPost, "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/telemetry/ListMetrics", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := Do(t, tt.method, agg.URL+tt.path)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d", r.Status, tt.status)
			}
			var e struct{ Error string }
			if err := json.Unmarshal(r.Body, &e); err != nil || e.Error == "" {
				t.Errorf("body %q is not a JSON error", r.Body)
			}
			if tt.status == http.StatusMethodNotAllowed && !strings.Contains(r.Header.Get("Allow"), "GET") {
				t.Errorf("Allow %q", r.Header.Get("Allow"))
			}
		})
	}
}

// TestSIGTERM stops both binaries with SIGTERM while they work: each must
// exit 0, promptly.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	const bound = 5 * time.Second
	sim := StartSimulator(t, "--switches=50", "--interval=100ms")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval=100ms")
	WaitReady(t, agg, 20*time.Second)
	for _, p := range []*Process{agg, sim} {
		if took := p.Stop(t); took > bound {
			t.Errorf("%s took %s to exit after SIGTERM, want < %s", p.Name, took, bound)
		}
		p.Logs.WaitFor(t, 0, 1, time.Second, p.Name+" Stopped", MsgIs("Stopped"))
	}
}
