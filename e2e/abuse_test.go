package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Limits of the aggregator under abuse: small enough that the tests reach
// them with cheap queries.
const (
	abuseSwitches   = 30
	abuseMaxSamples = 1000
	abuseConns      = 2000
	// readHeaderTimeout is the aggregator's http.Server.ReadHeaderTimeout.
	readHeaderTimeout = 10 * time.Second
)

// cheapQuery reads every switch's series: a real query, cheap enough to
// stay under --query.max-samples. The timeout cases give it deadlines it
// cannot meet instead of making it expensive: since the API refuses
// subqueries over 11,000 steps, no query both holds few samples and runs
// long.
const cheapQuery = `count(fabric_switch_receive_bytes_total)`

// TestAbuse runs the client-side abuse against one aggregator, each kind
// in parallel with the others: thousands of connections, slow-header
// clients, huge URLs and headers, odd methods, bad encodings and odd
// Unicode in parameters, expensive PromQL. Each must get a clear 4xx or
// 503 (never a 5xx from a handler, never a crash), normal requests must
// keep succeeding meanwhile, and afterwards the process is healthy,
// answers GetMetric with the source's value, and holds no more goroutines
// or file descriptors than before.
func TestAbuse(t *testing.T) {
	t.Parallel()
	// The test holds the connections, and the aggregator (which inherits
	// the limit) as many; fewer if the hard limit is too low for both.
	conns := abuseConns
	if limit := raiseFDLimit(t, 2*abuseConns+1024); limit < 2*abuseConns+1024 {
		conns = max(0, int(limit)-1024) / 2
		t.Logf("open file limit %d: %d connections instead of %d", limit, conns, abuseConns)
	}
	sim := StartSimulator(t, fmt.Sprintf("--switches=%d", abuseSwitches), "--interval=200ms", "--incident-rate=0")
	agg := StartAggregator(t, "--source.url="+sim.URL+"/counters", "--source.interval=200ms",
		fmt.Sprintf("--query.max-samples=%d", abuseMaxSamples), "--query.max-concurrency=1")
	WaitReady(t, agg, 20*time.Second)
	before, err := scrape(agg)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("abuse", func(t *testing.T) {
		t.Run("ManyConnections", func(t *testing.T) { t.Parallel(); abuseManyConnections(t, agg, conns) })
		t.Run("SlowHeaders", func(t *testing.T) { t.Parallel(); abuseSlowHeaders(t, agg) })
		t.Run("HugeRequests", func(t *testing.T) { t.Parallel(); abuseHugeRequests(t, agg) })
		t.Run("OddMethods", func(t *testing.T) { t.Parallel(); abuseOddMethods(t, agg) })
		t.Run("BadParameters", func(t *testing.T) { t.Parallel(); abuseBadParameters(t, agg) })
		t.Run("ExpensivePromQL", func(t *testing.T) { t.Parallel(); abuseExpensivePromQL(t, agg) })
	})

	// Still healthy, and still serving the source's data.
	if r := Get(t, agg.URL+"/-/healthy"); r.Status != http.StatusOK {
		t.Errorf("/-/healthy after the abuse: %d", r.Status)
	}
	checkGetMetricMatchesSource(t, sim, agg, "SW-05", "Rx_Bytes")
	// No goroutine or descriptor outlives its connection (the connections
	// closed by the tests may take a moment to be noticed).
	Client.CloseIdleConnections()
	Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		after, err := scrape(agg)
		if err != nil {
			return err
		}
		// Slack: the scrape's own connection, the poller's connection to
		// the source and the runtime's helpers.
		for _, c := range []struct {
			name  string
			slack float64
		}{{"go_goroutines", 10}, {"process_open_fds", 5}} {
			if b, a := before[c.name], after[c.name]; a > b+c.slack {
				return fmt.Errorf("%s %v after the abuse, %v before", c.name, a, b)
			}
		}
		return nil
	})
	for _, l := range agg.Logs.Lines(0) {
		if strings.Contains(l.Raw, "panic") {
			t.Errorf("aggregator log: %s", l.Raw)
		}
	}
}

// checkGetMetricMatchesSource waits until the aggregator and the simulator
// are at the same snapshot and compares one value.
func checkGetMetricMatchesSource(t *testing.T, sim, agg *Process, id, metric string) {
	t.Helper()
	target := agg.URL + "/telemetry/GetMetric?" + url.Values{"switch_id": {id}, "metric_name": {metric}}.Encode()
	Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		r := Get(t, target)
		if r.Status != http.StatusOK {
			return fmt.Errorf("GetMetric: %d %s", r.Status, r.Body)
		}
		var got struct {
			Value     json.RawMessage `json:"value"`
			Timestamp string          `json:"timestamp"`
		}
		if err := json.Unmarshal(r.Body, &got); err != nil {
			t.Fatalf("GetMetric: %v: %s", err, r.Body)
		}
		csv, err := FetchSimCSV(context.Background(), sim)
		if err != nil {
			return err
		}
		if csv.TimeText() != got.Timestamp {
			return fmt.Errorf("aggregator at %s, simulator at %s", got.Timestamp, csv.TimeText())
		}
		if err := sameValue(csv.Values[id][metric], got.Value); err != nil {
			t.Fatalf("GetMetric %s %s: %v", id, metric, err)
		}
		return nil
	})
}

// checkNormalRequests sends one of each ordinary request and fails the test
// if any is not a timely 200.
func checkNormalRequests(t *testing.T, agg *Process, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for _, path := range []string{
		"/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", "/telemetry/ListMetrics", "/metrics", "/-/healthy",
	} {
		r, err := TryDo(ctx, http.MethodGet, agg.URL+path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
		} else if r.Status != http.StatusOK {
			t.Errorf("%s: %d %.200s", path, r.Status, r.Body)
		}
	}
}

// heldConn is a keep-alive connection the test drives by hand.
type heldConn struct {
	c net.Conn
	r *bufio.Reader
}

func (h *heldConn) get(addr, target string) (int, error) {
	_ = h.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(h.c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, addr); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// abuseManyConnections opens n keep-alive connections, each with a request
// answered, and holds them all open: the aggregator must hold them
// (process_open_fds), keep answering ordinary requests promptly, and answer
// a second request on every one of them at once.
func abuseManyConnections(t *testing.T, agg *Process, n int) {
	if n < 256 {
		t.Skipf("the open file limit allows %d connections", n)
	}
	conns := make([]*heldConn, n)
	t.Cleanup(func() {
		for _, h := range conns {
			if h != nil {
				h.c.Close()
			}
		}
	})
	const target = "/telemetry/GetMetric?switch_id=SW-02&metric_name=Tx_Bytes"
	var next atomic.Int64
	var failures atomic.Int64
	var firstErr sync.Once
	fail := func(err error) {
		failures.Add(1)
		firstErr.Do(func() { t.Errorf("connection: %v", err) })
	}
	var wg sync.WaitGroup
	for range 32 { // dialers; the listen backlog is not the thing under test
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				c, err := net.DialTimeout("tcp", agg.Addr, 30*time.Second)
				if err != nil {
					fail(err)
					continue
				}
				h := &heldConn{c: c, r: bufio.NewReader(c)}
				conns[i] = h
				if code, err := h.get(agg.Addr, target); err != nil || code != http.StatusOK {
					fail(fmt.Errorf("first request: %d %v", code, err))
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d connections failed", failures.Load(), n)
	}

	// All held: ordinary requests on other connections still answer.
	checkNormalRequests(t, agg, 10*time.Second)
	if m, err := scrape(agg); err != nil {
		t.Error(err)
	} else if fds := m["process_open_fds"]; fds < float64(n) {
		t.Errorf("process_open_fds %v with %d connections held: the connections are not open", fds, n)
	}

	// A second request on every connection, all at once.
	start := make(chan struct{})
	for _, h := range conns {
		wg.Go(func() {
			<-start
			if code, err := h.get(agg.Addr, target); err != nil || code != http.StatusOK {
				fail(fmt.Errorf("second request: %d %v", code, err))
			}
		})
	}
	close(start)
	wg.Wait()
	if failed := failures.Load(); failed > 0 {
		t.Fatalf("%d of %d concurrent requests failed", failed, n)
	}
	checkNormalRequests(t, agg, 10*time.Second)
}

// abuseSlowHeaders holds connections that send their headers a byte at a
// time, and one that sends nothing: ReadHeaderTimeout must close each of
// them, not much later, while ordinary requests keep being answered.
func abuseSlowHeaders(t *testing.T, agg *Process) {
	const slow = 50
	began := time.Now()
	type result struct {
		after time.Duration
		err   error
	}
	results := make(chan result, slow+1)
	for i := range slow + 1 {
		go func() {
			c, err := net.DialTimeout("tcp", agg.Addr, 10*time.Second)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * readHeaderTimeout))
			closed := make(chan time.Duration, 1)
			go func() { // the server closes without an answer
				_, _ = io.Copy(io.Discard, c)
				closed <- time.Since(began)
			}()
			if i > 0 { // connection 0 sends nothing at all
				fmt.Fprintf(c, "GET /-/healthy HTTP/1.1\r\nHost: %s\r\nX-Slow: ", agg.Addr)
			drip:
				for {
					select {
					case d := <-closed:
						results <- result{after: d}
						return
					case <-time.After(500 * time.Millisecond):
						if _, err := c.Write([]byte("a")); err != nil {
							break drip
						}
					}
				}
			}
			results <- result{after: <-closed}
		}()
	}
	// Meanwhile, ordinary requests.
	for time.Since(began) < readHeaderTimeout/2 {
		checkNormalRequests(t, agg, 5*time.Second)
		time.Sleep(500 * time.Millisecond)
	}
	first, last := time.Duration(1<<62), time.Duration(0)
	for range slow + 1 {
		r := <-results
		first, last = min(first, r.after), max(last, r.after)
		switch {
		case r.err != nil:
			t.Errorf("slow connection: %v", r.err)
		case r.after < readHeaderTimeout-time.Second:
			t.Errorf("a slow connection was closed after %s, before ReadHeaderTimeout (%s)", r.after, readHeaderTimeout)
		case r.after > readHeaderTimeout+5*time.Second:
			t.Errorf("a slow connection was held %s, ReadHeaderTimeout is %s", r.after, readHeaderTimeout)
		}
	}
	t.Logf("%d slow connections closed by the server %s to %s after they opened", slow+1, first.Round(time.Millisecond), last.Round(time.Millisecond))
}

// abuseHugeRequests sends URLs and headers over and under the server's
// limit (MaxHeaderBytes, 64 KiB: the request line counts against it).
func abuseHugeRequests(t *testing.T, agg *Process) {
	tooLarge := func(code int) bool {
		return code == http.StatusRequestHeaderFieldsTooLarge || code == http.StatusRequestURITooLong || code == http.StatusBadRequest
	}
	tests := []struct {
		name    string
		target  string
		headers []string
		check   func(int) bool
		json    bool // the handler answered, with a JSON error
	}{
		{"1 MiB URL", "/telemetry/GetMetric?metric_name=Rx_Bytes&switch_id=" + strings.Repeat("a", 1<<20), nil, tooLarge, false},
		{"100 KiB URL", "/telemetry/ListMetrics?switch_id=" + strings.Repeat("%41", 100<<10/3), nil, tooLarge, false},
		{"48 KiB switch_id", "/telemetry/GetMetric?metric_name=Rx_Bytes&switch_id=" + strings.Repeat("b", 48<<10), nil, is(http.StatusNotFound), true},
		{"48 KiB query", "/api/v1/query?query=" + strings.Repeat("1%2B", 12<<10) + "1", nil, is(http.StatusBadRequest), true},
		{"one 100 KiB header", "/-/healthy", []string{"X-Big: " + strings.Repeat("h", 100<<10)}, tooLarge, false},
		{"1,000 headers", "/-/healthy", repeatHeaders(1000, 100), tooLarge, false},
		{"headers under the limit", "/-/healthy", repeatHeaders(100, 400), is(http.StatusOK), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := rawGet(agg.Addr, tc.target, tc.headers...)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(r.Status) {
				t.Fatalf("status %d: %.200s", r.Status, r.Body)
			}
			t.Logf("%d %s", r.Status, http.StatusText(r.Status))
			if tc.json {
				checkJSONError(t, r)
			}
			if len(r.Body) > 4<<10 {
				t.Errorf("a %d-byte answer: the input is echoed unclipped", len(r.Body))
			}
		})
	}
	checkNormalRequests(t, agg, 10*time.Second)
}

func is(want int) func(int) bool { return func(code int) bool { return code == want } }

func repeatHeaders(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("X-H%d: %s", i, strings.Repeat("v", size))
	}
	return out
}

// checkJSONError checks an error answer of a handler: JSON, with a
// non-empty error message.
func checkJSONError(t *testing.T, r Response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var e struct {
		Error string `json:"error"`
	}
	if !json.Valid(r.Body) || json.Unmarshal(r.Body, &e) != nil || e.Error == "" {
		t.Errorf("body %.300q is not a JSON error", r.Body)
	}
}

// abuseOddMethods sends methods the routes do not take, by hand (the
// client refuses some of them): a JSON 405 with Allow, or 400 from the
// server itself for a method that is not a token. Every route and method
// is covered by TestNoEndpointChangesServedData; this covers the odd
// spellings.
func abuseOddMethods(t *testing.T, agg *Process) {
	tests := []struct {
		method, target string
		want           int
	}{
		{"PUT", "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusMethodNotAllowed},
		{"DELETE", "/telemetry/ListMetrics", http.StatusMethodNotAllowed},
		{"PATCH", "/metrics", http.StatusMethodNotAllowed},
		{"TRACE", "/-/ready", http.StatusMethodNotAllowed},
		{"CONNECT", "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusMethodNotAllowed},
		{"OPTIONS", "/api/v1/query?query=1", http.StatusMethodNotAllowed},
		{"get", "/telemetry/GetMetric?switch_id=SW-01&metric_name=Rx_Bytes", http.StatusMethodNotAllowed}, // methods are case-sensitive
		{"PROPFIND", "/", http.StatusMethodNotAllowed},
		{"G(T", "/-/healthy", http.StatusBadRequest}, // not a token
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			r, err := rawExchange(agg.Addr, tc.method+" "+tc.target+" HTTP/1.1\r\nHost: "+agg.Addr+"\r\nConnection: close\r\n\r\n", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.want {
				t.Fatalf("status %d, want %d: %.200s", r.Status, tc.want, r.Body)
			}
			if tc.want == http.StatusMethodNotAllowed {
				checkJSONError(t, r)
				if !strings.Contains(r.Header.Get("Allow"), "GET") {
					t.Errorf("Allow %q", r.Header.Get("Allow"))
				}
			}
		})
	}
	// OPTIONS * is the server's own, answered without a handler or data.
	r, err := rawExchange(agg.Addr, "OPTIONS * HTTP/1.1\r\nHost: "+agg.Addr+"\r\nConnection: close\r\n\r\n", 10*time.Second)
	if err != nil || r.Status >= 500 || len(r.Body) > 0 {
		t.Errorf("OPTIONS *: %d %q %v", r.Status, r.Body, err)
	}
}

// abuseBadParameters sends REST and PromQL parameters that are badly
// percent-encoded, or decode to odd Unicode (NUL, controls, invalid UTF-8,
// overlong forms, surrogates, bidirectional overrides, BOM), some of them
// raw on the request line. Each must get a clear 4xx; the handlers' JSON
// answers must stay valid JSON, with no raw control character.
func abuseBadParameters(t *testing.T, agg *Process) {
	// bad: refused as a whole (400) wherever it is in a REST query string;
	// otherwise the value is well-formed but names nothing (400 or 404),
	// and as an unknown parameter name it is ignored (200).
	values := []struct {
		name, raw string
		bad       bool
	}{
		{"bad escape", "%zz", true}, {"lone percent", "%", true}, {"truncated escape", "SW%2", true},
		{"double percent", "%%41", true}, {"semicolon", "SW-01;metric_name=Rx_Bytes", true},
		{"raw NUL", "SW\x0001", true}, {"raw space", "SW 01", true}, {"raw DEL", "SW\x7f", true},
		{"raw CR LF", "SW\r\nX-Injected: yes", true},
		{"encoded NUL", "SW-01%00", false}, {"encoded controls", "%01%1b[31mred%1b[0m%7f", false},
		{"encoded CR LF", "SW-01%0d%0aX-Injected:%20yes", false},
		{"encoded invalid UTF-8", "%ff%fe%fd", true}, {"raw invalid UTF-8", "\xff\xfeSW", true},
		{"overlong slash", "%c0%af", true}, {"surrogate", "%ed%a0%80", true}, {"BOM", "%ef%bb%bfSW-01", false},
		{"RTL override encoded", "%e2%80%aeSW-01", false}, {"RTL override raw", "\u202eSW-01\u202c", false},
		{"zero-width joiner", "SW%e2%80%8d01", false}, {"emoji", "%f0%9f%a6%80", false},
		{"non-character", "%ef%bf%bf", false}, {"plus", "SW+01", false},
		{"32 KiB value", strings.Repeat("%e2%80%ae", 32<<10/9), false},
	}
	for _, v := range values {
		for _, target := range []struct {
			name, url string
			rest      bool
			unknown   bool // the value is a parameter name nobody asks for
		}{
			{"GetMetric switch_id", "/telemetry/GetMetric?metric_name=Rx_Bytes&switch_id=" + v.raw, true, false},
			{"GetMetric metric_name", "/telemetry/GetMetric?switch_id=SW-01&metric_name=" + v.raw, true, false},
			{"ListMetrics switch_id", "/telemetry/ListMetrics?switch_id=" + v.raw, true, false},
			{"ListMetrics parameter name", "/telemetry/ListMetrics?" + v.raw + "=1", true, true},
			{"PromQL query", "/api/v1/query?query=" + v.raw, false, false},
			{"label name", "/api/v1/label/" + v.raw + "/values", false, false},
		} {
			t.Run(v.name+"/"+target.name, func(t *testing.T) {
				r, err := rawGet(agg.Addr, target.url)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case r.Status >= 500:
					t.Fatalf("status %d for %.100q: %.300s", r.Status, target.url, r.Body)
				case target.rest && v.bad && r.Status != http.StatusBadRequest:
					t.Fatalf("status %d for %.100q, want 400: %.300s", r.Status, target.url, r.Body)
				case target.rest && !v.bad && !target.unknown && r.Status/100 != 4:
					t.Fatalf("status %d for %.100q, want 4xx: %.300s", r.Status, target.url, r.Body)
				}
				// Prometheus answers some odd but well-formed PromQL (an
				// unknown label, a string) with 200; anything else is 4xx.
				if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
					if !json.Valid(r.Body) {
						t.Errorf("invalid JSON: %.300q", r.Body)
					}
					for _, c := range bytes.TrimSpace(r.Body) {
						if c < 0x20 || c == 0x7f {
							t.Fatalf("raw control character %#x in the answer %.300q", c, r.Body)
						}
					}
				}
				if r.Status >= 400 && len(r.Body) > 4<<10 {
					t.Errorf("a %d-byte error: the input is echoed unclipped", len(r.Body))
				}
			})
		}
	}
	checkNormalRequests(t, agg, 10*time.Second)
}

// abuseExpensivePromQL: a query over the sample limit (422, execution, as
// Prometheus answers it), one over its timeout (503, timeout), a burst
// over the concurrency limit of one (the queries that wait too long for
// the slot get 503, timeout, "query queue"), one over the length limit
// (400, bad_data); then an ordinary query answers.
func abuseExpensivePromQL(t *testing.T, agg *Process) {
	query := func(ctx context.Context, q string, params ...string) (int, promError, error) {
		v := url.Values{"query": {q}}
		for i := 0; i+1 < len(params); i += 2 {
			v.Set(params[i], params[i+1])
		}
		r, err := TryDo(ctx, http.MethodGet, agg.URL+"/api/v1/query?"+v.Encode())
		if err != nil {
			return 0, promError{}, err
		}
		var e promError
		if err := json.Unmarshal(r.Body, &e); err != nil {
			return r.Status, e, fmt.Errorf("%d %.200q: %w", r.Status, r.Body, err)
		}
		return r.Status, e, nil
	}
	expect := func(name string, code int, typ, msg string, q string, params ...string) {
		t.Helper()
		got, e, err := query(context.Background(), q, params...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got != code || e.ErrorType != typ || !strings.Contains(e.Error, msg) {
			t.Errorf("%s: %d %s %q, want %d %s %q", name, got, e.ErrorType, e.Error, code, typ, msg)
		}
	}

	// 3,600 samples held at once by the subquery, over --query.max-samples.
	expect("sample limit", http.StatusUnprocessableEntity, "execution", "too many samples", `count_over_time(vector(1)[1h:1s])`)
	expect("timeout", http.StatusServiceUnavailable, "timeout", "query timed out", cheapQuery, "timeout", "0.000001")
	expect("too long", http.StatusBadRequest, "bad_data", "max-length", "1"+strings.Repeat("+1", 9000))

	// Twenty at once through a gate of one, each allowed a millisecond:
	// those still waiting for the slot by then time out in the queue.
	const burst = 20
	var (
		mu     sync.Mutex
		codes  = map[string]int{}
		queued int
		wg     sync.WaitGroup
	)
	for range burst {
		wg.Go(func() {
			code, e, err := query(context.Background(), cheapQuery, "timeout", "0.001")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("burst: %v", err)
			case code == http.StatusOK:
			case code == http.StatusServiceUnavailable && e.ErrorType == "timeout":
				if strings.Contains(e.Error, "query queue") {
					queued++
				}
			default:
				t.Errorf("burst: %d %s %q, want 200 or 503 timeout", code, e.ErrorType, e.Error)
			}
			codes[fmt.Sprint(code, " ", e.Error)]++
		})
	}
	wg.Wait()
	if queued == 0 {
		t.Errorf("no query of the burst timed out waiting for the slot: %v", codes)
	}
	t.Logf("burst of %d through --query.max-concurrency=1: %v", burst, codes)

	expect("ordinary query after", http.StatusOK, "", "", "count(fabric_switch_receive_bytes_total)")
}

// promError is the error part of the Prometheus API envelope.
type promError struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}
