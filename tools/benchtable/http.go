package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/fabrictelemetry/aggregator/simulator"
)

// source serves CSV bodies over loopback, as a telemetry source would,
// cycling through them one per request, so that successive polls see new
// values. The bodies are rendered beforehand: a simulator ticking during
// a measurement would take CPU from the server under test.
type source struct {
	srv    *http.Server
	url    string
	bodies [][]byte
	n      atomic.Uint64
}

// newSource serves n successive snapshots of a simulated fabric (simBodies).
func newSource(switches, ports, n int) (*source, error) {
	bodies, err := simBodies(switches, ports, n)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &source{bodies: bodies, url: "http://" + l.Addr().String() + "/csv"}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		body := s.bodies[(s.n.Add(1)-1)%uint64(len(s.bodies))]
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *source) close() { _ = s.srv.Close() }

// simBodies renders n successive snapshots of a simulated fabric: the
// switch matrix (/counters) when ports is 0, else the per-port fabric in
// UFM's layout (/csv/metrics).
func simBodies(switches, ports, n int) ([][]byte, error) {
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: ports, Seed: 1, Interval: time.Second})
	if err != nil {
		return nil, err
	}
	t := time.Now().Add(-time.Duration(n) * time.Second)
	var bodies [][]byte
	for i := range n {
		sim.Tick(t.Add(time.Duration(i) * time.Second))
		if ports > 0 {
			bodies = append(bodies, sim.UFMBody())
		} else {
			bodies = append(bodies, sim.Body())
		}
	}
	return bodies, nil
}

// attack runs vegeta against url: at the maximum rate with a fixed number
// of workers (and as many keep-alive connections) when rate is 0, else at
// rate per second with as many workers as it takes, up to maxOpenWorkers,
// so that a slow answer delays no later request (no coordinated omission)
// unless the server falls that far behind; the rate actually sent is
// reported beside the latencies.
func attack(url string, rate float64, workers int, d time.Duration) (*vegeta.Metrics, error) {
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: url})
	opts := []func(*vegeta.Attacker){vegeta.KeepAlive(true), vegeta.Timeout(30 * time.Second), vegeta.MaxBody(1 << 20)}
	pacer := vegeta.Pacer(vegeta.Rate{Freq: 0})
	if rate > 0 {
		pacer = vegeta.Rate{Freq: int(math.Round(rate)), Per: time.Second}
		opts = append(opts, vegeta.MaxWorkers(maxOpenWorkers), vegeta.MaxConnections(maxOpenWorkers))
	} else {
		opts = append(opts, vegeta.Workers(uint64(workers)), vegeta.MaxWorkers(uint64(workers)), vegeta.Connections(workers))
	}
	atk := vegeta.NewAttacker(opts...)
	var m vegeta.Metrics
	for res := range atk.Attack(tr, pacer, d, url) {
		m.Add(res)
	}
	m.Close()
	if m.Requests == 0 || m.Success < 1 {
		return &m, fmt.Errorf("%s: %d requests, success %.4f, status codes %v, errors %v", url, m.Requests, m.Success, m.StatusCodes, m.Errors)
	}
	return &m, nil
}

// maxOpenWorkers bounds the connections of a fixed-rate run: a server that
// stalls (a shared machine, a lock) would otherwise make vegeta open one
// per request until the process runs out of file descriptors.
const maxOpenWorkers = 512

// httpFigures is item 2: GetMetric through the aggregator against a bare
// server answering the same bytes.
type httpFigures struct {
	bodyLen            int
	workers            int
	aggMax, bareMax    float64 // requests per second, best round
	halfRate           float64
	aggP99, bareP99    time.Duration // at halfRate, best round
	aggP50, bareP50    time.Duration
	aggSent, bareSent  float64 // requests per second sent in the kept rounds
	rounds             int
	maxDur, latencyDur time.Duration
}

func httpFiguresRun(ctx context.Context, o options, log io.Writer) (*httpFigures, error) {
	src, err := newSource(50, 0, 1)
	if err != nil {
		return nil, err
	}
	defer src.close()
	agg, err := startServer(ctx, log, "-mode", "aggregator", "-source", src.url, "-interval", "10s")
	if err != nil {
		return nil, err
	}
	defer agg.stop(nil)
	aggURL := "http://" + agg.addr + "/telemetry/GetMetric?switch_id=SW-25&metric_name=Rx_Bytes"
	body, err := get(aggURL)
	if err != nil {
		return nil, err
	}
	bodyFile := filepath.Join(os.TempDir(), fmt.Sprintf("benchtable-body-%d.json", os.Getpid()))
	if err := os.WriteFile(bodyFile, body, 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(bodyFile)
	bare, err := startServer(ctx, log, "-mode", "bare", "-body", bodyFile)
	if err != nil {
		return nil, err
	}
	defer bare.stop(nil)
	bareURL := "http://" + bare.addr + "/telemetry/GetMetric?switch_id=SW-25&metric_name=Rx_Bytes"

	f := &httpFigures{bodyLen: len(body), workers: o.workers, rounds: o.rounds, maxDur: o.maxDur, latencyDur: o.latDur}
	f.aggP99, f.bareP99 = time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	targets := []struct {
		name string
		url  string
		max  *float64
	}{{"bare", bareURL, &f.bareMax}, {"aggregator", aggURL, &f.aggMax}}
	for _, t := range targets { // warm up: connections, buffers, the first render of everything
		if _, err := attack(t.url, 0, o.workers, o.maxDur/5); err != nil {
			return nil, err
		}
	}
	for r := range o.rounds {
		for i := range targets {
			t := targets[(i+r)%2] // alternate which goes first
			m, err := attack(t.url, 0, o.workers, o.maxDur)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(log, "max throughput %-10s round %d: %.0f req/s, p99 %s\n", t.name, r+1, m.Throughput, m.Latencies.P99)
			*t.max = max(*t.max, m.Throughput)
		}
	}
	if o.profileDir != "" {
		if err := profileUnderLoad(ctx, o, log, src.url, "10s", aggURL[len("http://"+agg.addr):], 0, "aggregator-getmetric-max.cpu.prof"); err != nil {
			return nil, err
		}
	}
	f.halfRate = f.bareMax / 2
	for r := range o.rounds {
		for i := range 2 {
			t := targets[(i+r)%2]
			m, err := attack(t.url, f.halfRate, 0, o.latDur)
			if err != nil {
				return nil, err
			}
			fmt.Fprintf(log, "at %.0f req/s %-10s round %d: sent %.0f req/s, p50 %s, p99 %s, max %s\n", f.halfRate, t.name, r+1, m.Rate, m.Latencies.P50, m.Latencies.P99, m.Latencies.Max)
			if t.name == "bare" && m.Latencies.P99 < f.bareP99 {
				f.bareP99, f.bareP50, f.bareSent = m.Latencies.P99, m.Latencies.P50, m.Rate
			}
			if t.name == "aggregator" && m.Latencies.P99 < f.aggP99 {
				f.aggP99, f.aggP50, f.aggSent = m.Latencies.P99, m.Latencies.P50, m.Rate
			}
		}
	}
	return f, nil
}

// vegetaSummary is what the tables keep of a vegeta run.
type vegetaSummary struct {
	requests      uint64
	rate          float64 // requests sent per second
	throughput    float64
	p50, p99, max time.Duration
}

func summarize(m *vegeta.Metrics, err error) (*vegetaSummary, error) {
	if m == nil {
		return nil, err
	}
	return &vegetaSummary{requests: m.Requests, rate: m.Rate, throughput: m.Throughput, p50: m.Latencies.P50, p99: m.Latencies.P99, max: m.Latencies.Max}, err
}

func (f *httpFigures) rows() []row {
	load := fmt.Sprintf("vegeta, %d workers, keep-alive, best of %d × %s", f.workers, f.rounds, f.maxDur)
	return []row{
		{item: "2", figure: fmt.Sprintf("GetMetric over HTTP, aggregator as built, 50 switches: max throughput (%s)", load),
			value:    fmt.Sprintf("%.0f req/s", f.aggMax),
			baseline: fmt.Sprintf("bare net/http, constant %d-byte body: %.0f req/s", f.bodyLen, f.bareMax),
			ratio:    f.aggMax / f.bareMax, target: atLeast(0.9)},
		{item: "2", figure: fmt.Sprintf("GetMetric p99 at %.0f req/s (half the bare maximum), best of %d × %s", f.halfRate, f.rounds, f.latencyDur),
			value:    fmt.Sprintf("p99 %s (p50 %s)%s", fmtDur(f.aggP99), fmtDur(f.aggP50), behind(f.halfRate, f.aggSent)),
			baseline: fmt.Sprintf("bare: p99 %s (p50 %s)%s", fmtDur(f.bareP99), fmtDur(f.bareP50), behind(f.halfRate, f.bareSent)),
			ratio:    f.aggP99.Seconds() / f.bareP99.Seconds()},
	}
}

// behind says so when a fixed-rate run could not send at its rate (the
// server fell maxOpenWorkers requests behind): its latencies are then
// understated.
func behind(rate, sent float64) string {
	if sent >= 0.95*rate {
		return ""
	}
	return fmt.Sprintf("; only %.0f req/s sent", sent)
}

// profileUnderLoad starts an aggregator with pprof on, loads it with
// GetMetric (path) at rate (0: the maximum with o.workers workers) and
// writes a 5-second CPU profile of it to o.profileDir/file. Not measured.
func profileUnderLoad(ctx context.Context, o options, log io.Writer, source, interval, path string, rate float64, file string) error {
	srv, err := startServer(ctx, log, "-mode", "aggregator", "-source", source, "-interval", interval, "-pprof")
	if err != nil {
		return err
	}
	defer srv.stop(nil)
	done := make(chan error, 1)
	go func() {
		_, err := attack("http://"+srv.addr+path, rate, o.workers, 7*time.Second)
		done <- err
	}()
	time.Sleep(time.Second)
	prof, err := get("http://" + srv.addr + "/debug/pprof/profile?seconds=5")
	if aerr := <-done; err == nil {
		err = aerr
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return err
	}
	out := filepath.Join(o.profileDir, file)
	fmt.Fprintln(log, "CPU profile:", out)
	return os.WriteFile(out, prof, 0o644)
}

// server is a serve child that is serving.
type server struct {
	*child
	addr string
}

func startServer(ctx context.Context, log io.Writer, args ...string) (*server, error) {
	c, err := startChild(ctx, log, append([]string{"serve"}, args...)...)
	if err != nil {
		return nil, err
	}
	var h serveHello
	if err := c.read(&h); err != nil {
		return nil, err
	}
	return &server{child: c, addr: h.Addr}, nil
}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return body, nil
}
