package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/simulator"
)

// Soak settings. The source is FLAKY: about 40% of its answers are good,
// the rest are every fault mode in turn (simulator/faults.go flakyWeights).
const (
	soakSwitches = 50
	soakInterval = 250 * time.Millisecond // the simulator's and the poller's
	soakTimeout  = time.Second            // --source.timeout: TIMEOUT answers cost this much
	soakHistory  = 15 * time.Second       // --query.retention: full within the first quarter
	// soakMemoryRatio bounds the last quarter's peak heap against the first
	// quarter's. A steady Go process sampled once a second sees the same
	// sawtooth (live heap up to twice that under GOGC=100) in both quarters,
	// so its peaks agree within a few percent; 1.5 leaves room for a burst
	// of concurrent queries landing on a peak, and still fails a leak that
	// grows the heap by half within the run.
	soakMemoryRatio = 1.5
	// soakGoroutineSlack is how many more goroutines the aggregator may
	// have once the load has stopped and its connections are closed: the
	// scrape's own connection and a poll in flight (its transport's
	// read and write loops).
	soakGoroutineSlack = 10
)

// rejectingModes are the simulator's faults the aggregator must reject, and
// the reason it must give; the other faults (SLOW within the timeout,
// PARTIAL, SCHEMA) are valid data.
var rejectingModes = map[string]string{
	"ERROR_500": "http_status", "CORRUPT": "parse", "TRUNCATED": "truncated",
	"EMPTY": "empty", "GARBAGE": "parse", "TIMEOUT": "timeout",
}

// TestSoak runs the real simulator in FLAKY mode and the real aggregator
// polling it fast, and hammers every endpoint for SOAK_DURATION (make soak;
// skipped when unset). It asserts: no 5xx but /-/ready's 503 while the
// snapshot is stale (expected: a FLAKY source leaves gaps longer than
// --source.max-staleness; the body must say so); every GetMetric and
// ListMetrics answer is the simulator's body of the answer's timestamp,
// value for value; every rejecting fault the simulator injected was
// rejected with its reason; no goroutine leak; flat memory. It prints what
// it held.
func TestSoak(t *testing.T) {
	env := os.Getenv("SOAK_DURATION")
	if env == "" {
		t.Skip("SOAK_DURATION not set (make soak SOAKTIME=5m)")
	}
	duration, err := time.ParseDuration(env)
	if err != nil || duration < 4*soakHistory {
		t.Fatalf("SOAK_DURATION=%q: want a duration of at least %s", env, 4*soakHistory)
	}
	sim := StartSimulator(t, fmt.Sprintf("--switches=%d", soakSwitches), "--interval="+soakInterval.String(),
		"--incident-rate=0", "--mode=FLAKY", "--slow-delay=100ms", "--log.level=debug")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval="+soakInterval.String(),
		"--source.timeout="+soakTimeout.String(), "--query.retention="+soakHistory.String())
	WaitReady(t, agg, 30*time.Second)

	s := &soak{
		t: t, sim: sim, agg: agg,
		client:  &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		history: &simHistory{bodies: map[string]*SimCSV{}, added: make(chan struct{})},
		counts:  map[string]map[int]int{},
	}
	base, err := scrapeWith(s.client, agg)
	if err != nil {
		t.Fatal(err)
	}
	simCursor := sim.Logs.Cursor()

	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.collect(ctx) })
	// The collector's first body comes before the readers' first answer.
	if s.history.lookup(s.newestTime(t), 10*time.Second) == nil {
		t.Fatal("the collector fetched no body")
	}
	wg.Go(func() { s.sample(ctx) })
	for i := range 4 {
		wg.Go(func() { s.getMetrics(ctx, uint64(i)) })
	}
	wg.Go(func() { s.listMetrics(ctx) })
	wg.Go(func() { s.loop(ctx, "/metrics", s.checkExposition) })
	wg.Go(func() { s.loop(ctx, "/-/ready", s.checkReady) })
	wg.Go(func() { s.promQL(ctx, 0) })
	wg.Go(func() { s.promQL(ctx, 1) })
	wg.Wait()

	// After the load: every connection closed, the goroutines are back.
	s.client.CloseIdleConnections()
	Client.CloseIdleConnections()
	var end map[string]float64
	Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		if end, err = scrapeWith(s.client, agg); err != nil {
			return err
		}
		s.client.CloseIdleConnections()
		if g, g0 := end["go_goroutines"], base["go_goroutines"]; g > g0+soakGoroutineSlack {
			return fmt.Errorf("go_goroutines %v after the soak, %v before", g, g0)
		}
		return nil
	})
	s.report(base, end, simCursor)
}

// soak is one soak run's shared state.
type soak struct {
	t        *testing.T
	sim, agg *Process
	client   *http.Client
	history  *simHistory

	mu         sync.Mutex
	counts     map[string]map[int]int // endpoint → status → answers
	errors     []string
	verified   int // GetMetric and ListMetrics answers matched to a body
	unverified int // answers whose body the collector did not keep
	stale      int // /-/ready 503s, each saying the snapshot is too old
	samples    []memSample
}

type memSample struct {
	at                    time.Duration
	heap, rss, goroutines float64
}

// fail records an error (reported, and failing the test, at the end; at
// most 20 are kept).
func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errors) < 20 {
		s.errors = append(s.errors, fmt.Sprintf(format, args...))
	}
	if len(s.errors) == 1 {
		s.t.Errorf(format, args...)
	}
}

func (s *soak) count(endpoint string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.counts[endpoint] == nil {
		s.counts[endpoint] = map[int]int{}
	}
	s.counts[endpoint][status]++
}

// get sends one request and counts its answer. A 5xx is an error unless
// allow5xx says otherwise; a transport error is one unless the run is over.
func (s *soak) get(ctx context.Context, endpoint, target string) (Response, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.agg.URL+target, nil)
	if err != nil {
		s.fail("%s: %v", target, err)
		return Response{}, false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.fail("%s: %v", target, err)
		}
		return Response{}, false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() == nil {
			s.fail("%s: reading: %v", target, err)
		}
		return Response{}, false
	}
	s.count(endpoint, resp.StatusCode)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
	if r.Status >= 500 && endpoint != "/-/ready" {
		s.fail("%s: %d %.300s", target, r.Status, r.Body)
		return r, false
	}
	return r, true
}

func (s *soak) loop(ctx context.Context, endpoint string, check func(Response)) {
	for ctx.Err() == nil {
		if r, ok := s.get(ctx, endpoint, endpoint); ok {
			check(r)
		}
	}
}

// collect keeps every body the simulator serves (?mode=OK: the good body
// of the current snapshot, whatever the fault), and forgets those older
// than a minute, which no answer can still be from.
func (s *soak) collect(ctx context.Context) {
	for ctx.Err() == nil {
		csv, err := FetchSimCSV(ctx, s.sim)
		if err != nil {
			if ctx.Err() == nil {
				s.fail("collector: %v", err)
			}
			return
		}
		s.history.add(csv)
		s.history.prune(csv.Timestamp - time.Minute.Milliseconds())
		time.Sleep(20 * time.Millisecond)
	}
}

// prune forgets the bodies older than oldest (Unix milliseconds).
func (h *simHistory) prune(oldest int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ts, b := range h.bodies {
		if b.Timestamp < oldest {
			delete(h.bodies, ts)
		}
	}
}

func (s *soak) newestTime(t *testing.T) string {
	csv, err := FetchSimCSV(context.Background(), s.sim)
	if err != nil {
		t.Fatal(err)
	}
	return csv.TimeText()
}

// body returns the simulator's body of an answer's timestamp, waiting a
// little for the collector, and counts the answer as verified or not.
func (s *soak) body(ts string) *SimCSV {
	b := s.history.lookup(ts, 2*time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b == nil {
		s.unverified++
	} else {
		s.verified++
	}
	return b
}

var soakMetrics = []string{"Rx_Bytes", "Tx_Packets", "Latency_Avg_uSec", "Temperature_C", "Ports_Up", "Symbol_Errors"}

// getMetrics asks GetMetric for random switches and metrics. A 404 is a
// switch a PARTIAL body left out; a 200 must be the value of the body of
// its timestamp.
func (s *soak) getMetrics(ctx context.Context, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 8))
	for ctx.Err() == nil {
		id := fmt.Sprintf("SW-%02d", 1+rnd.IntN(soakSwitches))
		metric := soakMetrics[rnd.IntN(len(soakMetrics))]
		r, ok := s.get(ctx, "GetMetric", "/telemetry/GetMetric?"+url.Values{"switch_id": {id}, "metric_name": {metric}}.Encode())
		if !ok {
			continue
		}
		switch r.Status {
		case http.StatusNotFound:
			if !strings.Contains(string(r.Body), id) {
				s.fail("GetMetric %s %s: 404 not naming the switch: %s", id, metric, r.Body)
			}
			continue
		case http.StatusOK:
		default:
			s.fail("GetMetric %s %s: %d %s", id, metric, r.Status, r.Body)
			continue
		}
		var got struct {
			Value     json.RawMessage `json:"value"`
			Timestamp string          `json:"timestamp"`
		}
		if err := json.Unmarshal(r.Body, &got); err != nil {
			s.fail("GetMetric: %v: %s", err, r.Body)
			continue
		}
		if b := s.body(got.Timestamp); b != nil {
			if err := sameValue(b.Values[id][metric], got.Value); err != nil {
				s.fail("GetMetric %s %s at %s is not the simulator's value: %v", id, metric, got.Timestamp, err)
			}
		}
	}
}

// listMetrics checks whole ListMetrics answers against the body of their
// timestamp: every switch served is in the body (PARTIAL serves fewer),
// every value is the body's, and the only extra metric is SCHEMA's column.
func (s *soak) listMetrics(ctx context.Context) {
	for ctx.Err() == nil {
		r, ok := s.get(ctx, "ListMetrics", "/telemetry/ListMetrics")
		if !ok {
			continue
		}
		if r.Status != http.StatusOK {
			s.fail("ListMetrics: %d %s", r.Status, r.Body)
			continue
		}
		l, err := decodeList(r.Body)
		if err != nil {
			s.fail("%v", err)
			continue
		}
		b := s.body(l.Timestamp)
		if b == nil {
			continue
		}
		if l.SwitchCount != len(l.Switches) || l.SwitchCount == 0 {
			s.fail("ListMetrics at %s: switch_count %d with %d switches", l.Timestamp, l.SwitchCount, len(l.Switches))
		}
		for _, sw := range l.Switches {
			row, ok := b.Values[sw.SwitchID]
			if !ok {
				s.fail("ListMetrics at %s: %s is not in the simulator's body", l.Timestamp, sw.SwitchID)
				break
			}
			for m, raw := range sw.Metrics {
				text, known := row[m]
				if !known {
					if m != "Fan_Speed_RPM" {
						s.fail("ListMetrics at %s: %s has %s, not in the body", l.Timestamp, sw.SwitchID, m)
					}
					continue
				}
				if err := sameValue(text, raw); err != nil {
					s.fail("ListMetrics at %s: %s %s: %v", l.Timestamp, sw.SwitchID, m, err)
				}
			}
		}
	}
}

// checkExposition reads every sample line's value.
func (s *soak) checkExposition(r Response) {
	if r.Status != http.StatusOK {
		s.fail("/metrics: %d", r.Status)
		return
	}
	for line := range strings.Lines(string(r.Body)) {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i < 0 || strings.TrimSpace(line[i:]) == "" {
			s.fail("/metrics: bad line %q", line)
			return
		}
	}
}

// checkReady accepts 200, and 503 only for a snapshot that is too old (the
// FLAKY source's gaps; never "no snapshot", which it had at the start).
func (s *soak) checkReady(r Response) {
	switch {
	case r.Status == http.StatusOK:
	case r.Status == http.StatusServiceUnavailable && strings.Contains(string(r.Body), "old"):
		s.mu.Lock()
		s.stale++
		s.mu.Unlock()
	default:
		s.fail("/-/ready: %d %s", r.Status, r.Body)
	}
}

// promQL runs instant (kind 0) or range (kind 1) queries, and label
// lookups, that dashboards run.
func (s *soak) promQL(ctx context.Context, kind int) {
	instant := []string{
		`sum(rate(fabric_switch_receive_bytes_total[5s]))`,
		`topk(5, fabric_switch_latency_average_seconds)`,
		`count by (switch_id) (fabric_switch_ports_up)`,
		`max_over_time(fabric_switch_temperature_celsius[10s])`,
	}
	for i := 0; ctx.Err() == nil; i++ {
		var endpoint, target string
		switch {
		case kind == 0 && i%5 == 4:
			endpoint, target = "/api/v1/labels", "/api/v1/labels"
		case kind == 0:
			endpoint = "/api/v1/query"
			target = endpoint + "?" + url.Values{"query": {instant[i%len(instant)]}}.Encode()
		default:
			now := time.Now()
			endpoint = "/api/v1/query_range"
			target = endpoint + "?" + url.Values{
				"query": {`avg(rate(fabric_switch_transmit_bytes_total[5s]))`},
				"start": {fmt.Sprint(now.Add(-soakHistory).Unix())}, "end": {fmt.Sprint(now.Unix())}, "step": {"1"},
			}.Encode()
		}
		r, ok := s.get(ctx, endpoint, target)
		if !ok {
			continue
		}
		var env struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal(r.Body, &env); r.Status != http.StatusOK || err != nil || env.Status != "success" {
			s.fail("%s: %d %.300s", target, r.Status, r.Body)
		}
	}
}

// sample scrapes the aggregator's own metrics once a second.
func (s *soak) sample(ctx context.Context) {
	began := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m, err := scrapeWith(s.client, s.agg)
		if err != nil {
			if ctx.Err() == nil {
				s.fail("sampling: %v", err)
			}
			continue
		}
		s.count("/metrics", http.StatusOK)
		s.mu.Lock()
		s.samples = append(s.samples, memSample{
			at: time.Since(began), heap: m["go_memstats_heap_inuse_bytes"],
			rss: m["process_resident_memory_bytes"], goroutines: m["go_goroutines"],
		})
		s.mu.Unlock()
	}
}

// report prints what the run held and fails the test on any error, on
// faults not rejected as they should be, and on memory growth.
func (s *soak) report(base, end map[string]float64, simCursor int) {
	t := s.t
	s.mu.Lock()
	defer s.mu.Unlock()

	// Faults the simulator injected into the aggregator's polls (the
	// collector's requests are all mode=OK).
	injected := map[string]int{}
	for _, l := range s.sim.Logs.Lines(simCursor) {
		if !strings.HasPrefix(l.Msg(), "Serving") {
			continue
		}
		mode := l.Str("mode")
		if f, ok := l.Fields["mode"].(float64); ok {
			mode = simulator.Mode(int(f)).String()
		}
		injected[mode]++
	}
	wantRejected := map[string]int{}
	faults := 0
	for mode, n := range injected {
		if mode != "OK" {
			faults += n
		}
		if reason, ok := rejectingModes[mode]; ok {
			wantRejected[reason] += n
		}
	}
	var lines []string
	logf := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	logf("soak: %s against a FLAKY source (%d switches, new snapshot and poll every %s, --source.timeout %s)",
		s.samples[len(s.samples)-1].at.Round(time.Second), soakSwitches, soakInterval, soakTimeout)
	logf("requests by endpoint:")
	total := 0
	for _, ep := range sortedKeys(s.counts) {
		var parts []string
		n := 0
		for _, code := range sortedKeys(s.counts[ep]) {
			parts = append(parts, fmt.Sprintf("%d×%d", s.counts[ep][code], code))
			n += s.counts[ep][code]
		}
		total += n
		logf("  %-22s %7d  (%s)", ep, n, strings.Join(parts, ", "))
	}
	logf("  %-22s %7d", "total", total)
	logf("answers checked against the simulator's body of their timestamp: %d (%d whose body the collector missed)", s.verified, s.unverified)
	logf("/-/ready 503 while the snapshot was older than --source.max-staleness: %d", s.stale)
	// The collector's requests are the OK answers beyond the polls.
	delta := func(name string, match ...string) float64 {
		return sumOf(end, name, match...) - sumOf(base, name, match...)
	}
	accepted, rejected := delta("fabric_ingest_total", `result="success"`), delta("fabric_ingest_failures_total")
	logf("polls: %.0f, faults injected into them by the simulator: %d", accepted+rejected, faults)
	for _, mode := range sortedKeys(injected) {
		if mode != "OK" {
			logf("  %-10s %5d", mode, injected[mode])
		}
	}
	logf("polls accepted: %.0f (good bodies, and the valid faults PARTIAL, SCHEMA and SLOW); rejected: %.0f (fabric_ingest_failures_total):", accepted, rejected)
	for _, reason := range sortedKeys(wantRejected) {
		got := delta("fabric_ingest_failures_total", `reason="`+reason+`"`)
		logf("  %-12s %5.0f (faults injected that must be rejected so: %d)", reason, got, wantRejected[reason])
		// A poll may be in flight at either end of the count.
		if d := got - float64(wantRejected[reason]); d < -2 || d > 2 {
			s.errors = append(s.errors, fmt.Sprintf("%s: %.0f polls rejected, %d such faults injected", reason, got, wantRejected[reason]))
		}
	}
	for _, reason := range []string{"connection", "schema", "too_large", "limit"} {
		if got := delta("fabric_ingest_failures_total", `reason="`+reason+`"`); got > 0 {
			s.errors = append(s.errors, fmt.Sprintf("%.0f polls rejected as %s, which the simulator never injects", got, reason))
		}
	}

	q := len(s.samples) / 4
	if q == 0 {
		t.Fatalf("only %d memory samples", len(s.samples))
	}
	peak := func(from, to int, f func(memSample) float64) float64 {
		m := 0.0
		for _, x := range s.samples[from:to] {
			m = max(m, f(x))
		}
		return m
	}
	heap := func(x memSample) float64 { return x.heap }
	rss := func(x memSample) float64 { return x.rss }
	h1, h4 := peak(0, q, heap), peak(len(s.samples)-q, len(s.samples), heap)
	r1, r4 := peak(0, q, rss), peak(len(s.samples)-q, len(s.samples), rss)
	logf("memory, peak of the first and last quarter (%d samples each):", q)
	logf("  go_memstats_heap_inuse_bytes   %6.1f MiB → %6.1f MiB (×%.2f, limit ×%.1f)", h1/(1<<20), h4/(1<<20), h4/h1, soakMemoryRatio)
	logf("  process_resident_memory_bytes  %6.1f MiB → %6.1f MiB (×%.2f)", r1/(1<<20), r4/(1<<20), r4/r1)
	logf("goroutines: %.0f before the load, %.0f at its peak, %.0f after it (slack %d)",
		base["go_goroutines"], peak(0, len(s.samples), func(x memSample) float64 { return x.goroutines }), end["go_goroutines"], soakGoroutineSlack)
	if h4 > soakMemoryRatio*h1 {
		s.errors = append(s.errors, fmt.Sprintf("heap grew from %.1f MiB to %.1f MiB", h1/(1<<20), h4/(1<<20)))
	}
	logf("errors: %d", len(s.errors))
	for _, e := range s.errors {
		logf("  %s", e)
	}
	for _, l := range lines {
		t.Log(l)
	}
	if len(s.errors) > 0 {
		t.Fail()
	}
	if s.unverified*100 > s.verified+s.unverified {
		t.Errorf("%d of %d answers could not be matched to a simulator body", s.unverified, s.verified+s.unverified)
	}
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
