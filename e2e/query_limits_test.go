package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The limits of TestQueryMemoryBudget, scaled down with the fabric (200 ×
// 64 ports: 12,800 series per port metric, 179,200 port series): a query
// at them holds at most 2e6 × 24 B of samples, 5e4 × 800 B of series and
// 32 MiB of answer (queryapi.Options.QueryMemory), 121,554,432 bytes.
// GOMEMLIMIT=1GiB lets queries at their limits take half of it, 536,870,912
// bytes: 4 of them (queryapi.ConcurrencyFor).
const (
	budgetMaxSamples       = 2_000_000
	budgetMaxSeries        = 50_000
	budgetMaxResponseBytes = 32 << 20
	budgetMemLimit         = 1 << 30
	budgetQueryMemory      = budgetMaxSamples*24 + budgetMaxSeries*800 + budgetMaxResponseBytes
	budgetConcurrency      = 4
)

// heavyQuery is one query of the hostile set and the answers it may get.
type heavyQuery struct {
	name   string
	path   string
	params url.Values
	// want is the status it must get (200, or a refusal with wantType
	// and a message naming wantFlag); queued copies may also get 503
	// timeout.
	want     int
	wantType string
	wantFlag string
}

type heavyAnswer struct {
	status int
	size   int
	err    promError
}

func (q heavyQuery) ask(ctx context.Context, c *http.Client, agg *Process) (heavyAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, agg.URL+q.path, strings.NewReader(q.params.Encode()))
	if err != nil {
		return heavyAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return heavyAnswer{}, err
	}
	defer resp.Body.Close()
	var env struct {
		promError
		Data json.RawMessage `json:"data"`
	}
	d := json.NewDecoder(resp.Body)
	if err := d.Decode(&env); err != nil {
		return heavyAnswer{}, fmt.Errorf("%s: %d, not JSON: %w", q.name, resp.StatusCode, err)
	}
	return heavyAnswer{status: resp.StatusCode, size: int(d.InputOffset()), err: env.promError}, nil
}

// check fails the test unless a is one of the answers q may get.
func (q heavyQuery) check(t *testing.T, a heavyAnswer, queued bool) {
	t.Helper()
	switch {
	case queued && a.status == http.StatusServiceUnavailable && a.err.ErrorType == "timeout":
	case a.status != q.want:
		t.Errorf("%s: %d %s %q, want %d", q.name, a.status, a.err.ErrorType, a.err.Error, q.want)
	case q.want == http.StatusOK && a.size > budgetMaxResponseBytes:
		t.Errorf("%s: answer of %d bytes, over --query.max-response-bytes", q.name, a.size)
	case q.want != http.StatusOK && (a.err.ErrorType != q.wantType || !strings.Contains(a.err.Error, q.wantFlag)):
		t.Errorf("%s: %d %s %q, want %s naming %s", q.name, a.status, a.err.ErrorType, a.err.Error, q.wantType, q.wantFlag)
	}
}

func rangeParams(query string, start time.Time, length, step time.Duration) url.Values {
	return url.Values{"query": {query}, "start": {unixText(start)}, "end": {unixText(start.Add(length))}, "step": {step.String()}}
}

func unixText(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// TestQueryMemoryBudget runs the hostile query set against the real
// aggregator over a 200 × 64-port simulated fabric with limits scaled to it
// (budget* above) and GOMEMLIMIT=1GiB: the issue's query scaled to the
// fabric (one metric over every port for 5 minutes at a step of 100 ms, the
// 38.4 million samples the issue's query has on the 2,000 × 64 fabric), a
// regex over every port series, a large topk, answers just under and over
// the size limit, then 24 heavy queries at once, six times the derived
// concurrency. Every query is answered 200 within its limits or refused
// with Prometheus's status and error type; the peak resident memory stays
// under the bound derived from the limits; and after the load the memory
// is returned.
func TestQueryMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("a 179,200-series fabric under heavy queries")
	}
	sim := StartSimulator(t, "--switches=200", "--ports=64", "--interval=1s", "--incident-rate=0", "--seed=5")
	t.Setenv("GOMEMLIMIT", "1GiB") // the aggregator's environment; the simulator has started
	agg := start(t, "aggregator", PlainAggregator(t), "Listening on", withDefaults([]string{
		"--source.url=" + sim.URL + "/csv/metrics", "--source.interval=1s", "--source.timeout=10s",
		"--query.max-samples=" + strconv.Itoa(budgetMaxSamples), "--query.max-series=" + strconv.Itoa(budgetMaxSeries),
		"--query.max-response-bytes=32MiB",
	})...)

	// The environment's limit wins over the machine's, and the concurrency
	// is derived from it.
	limit, _ := agg.Logs.WaitFor(t, 0, 1, 10*time.Second, "the memory limit", MsgIs("Go memory limit"))
	if limit.Str("from") != "GOMEMLIMIT" || limit.Fields["limit_bytes"] != float64(budgetMemLimit) {
		t.Errorf("memory limit logged as %s", limit.Raw)
	}
	limits, _ := agg.Logs.WaitFor(t, 0, 1, 10*time.Second, "the query limits", MsgIs("Query limits"))
	if limits.Fields["max_concurrency"] != float64(budgetConcurrency) || limits.Fields["query_memory"] != float64(budgetQueryMemory) {
		t.Errorf("query limits logged as %s", limits.Raw)
	}

	// Fifteen polls of history, and every endpoint once, before the idle
	// figures.
	WaitReady(t, agg, time.Minute)
	Eventually(t, 2*time.Minute, 500*time.Millisecond, func() error {
		m, err := scrape(agg)
		if err != nil {
			return err
		}
		if n := sumOf(m, "fabric_ingest_total", `result="success"`); n < 15 {
			return fmt.Errorf("%v polls", n)
		}
		return nil
	})
	client := &http.Client{Timeout: 3 * time.Minute}
	t.Cleanup(client.CloseIdleConnections)
	if r := Get(t, agg.URL+"/telemetry/ListMetrics"); r.Status != http.StatusOK {
		t.Fatalf("ListMetrics: %d", r.Status)
	}
	now := time.Now()
	start := now.Add(-5 * time.Second) // within the history; the lookback fills the steps after it
	const tx = "fabric_port_transmit_bytes_total"
	ordinary := heavyQuery{"every port, instant", "/api/v1/query", url.Values{"query": {tx}}, 200, "", ""}
	if a, err := ordinary.ask(t.Context(), client, agg); err != nil {
		t.Fatal(err)
	} else {
		ordinary.check(t, a, false)
	}
	idleRSS, idleHWM := readMemory(t, agg).rss, readMemory(t, agg).hwm
	resetPeak(t, agg)

	issue := heavyQuery{"the issue's query, scaled", "/api/v1/query_range", rangeParams(tx, start, 5*time.Minute, 100*time.Millisecond),
		422, "execution", "--query.max-samples"}
	fits := heavyQuery{"61 points per port", "/api/v1/query_range", rangeParams(tx, start, time.Minute, time.Second), 200, "", ""}
	for _, q := range []heavyQuery{
		issue,
		{"regex over every port series", "/api/v1/query", url.Values{"query": {`{__name__=~"fabric_port_.+"}`}}, 422, "cost_limit", "--query.max-series"},
		{"topk(5000, rate)", "/api/v1/query", url.Values{"query": {"topk(5000, rate(" + tx + "[1m]))"}}, 200, "", ""},
		fits,
		{"121 points per port", "/api/v1/query_range", rangeParams(tx, start, 2*time.Minute, time.Second), 422, "execution", "--query.max-response-bytes"},
	} {
		a, err := q.ask(t.Context(), client, agg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d, %d bytes", q.name, a.status, a.size)
		q.check(t, a, false)
	}

	// Six times the concurrency at once: half that fit, half the issue's.
	var wg sync.WaitGroup
	for i := range 6 * budgetConcurrency {
		q := fits
		if i%2 == 1 {
			q = issue
		}
		wg.Go(func() {
			a, err := q.ask(t.Context(), client, agg)
			if err != nil {
				t.Error(err)
				return
			}
			q.check(t, a, true)
		})
	}
	wg.Wait()
	peak := readMemory(t, agg).hwm

	// The bound: what is live at most is the idle process and the derived
	// number of queries at their limits; the collector lets the heap grow
	// to twice what it found live (GOGC=100), but not past GOMEMLIMIT; and
	// 64 MiB is allowed for what the runtime does not count there (the
	// binary's text, unscavenged pages).
	live := idleRSS + budgetConcurrency*budgetQueryMemory
	bound := min(2*live, budgetMemLimit) + 64<<20
	t.Logf("idle %d MiB RSS (%d MiB peak while polling), %d MiB peak under the load, bound %d MiB",
		idleRSS>>20, idleHWM>>20, peak>>20, bound>>20)
	if peak > bound {
		t.Errorf("peak RSS %d MiB under the load, over the bound of %d MiB", peak>>20, bound>>20)
	}

	m, err := scrape(agg)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"samples", "series", "response_bytes"} {
		if sumOf(m, "fabric_query_refused_total", `limit="`+l+`"`) < 1 {
			t.Errorf("fabric_query_refused_total{limit=%q} did not count", l)
		}
	}

	// The memory comes back: within 64 MiB of idle (the history has grown
	// by a few polls meanwhile, the answer buffers kept for reuse are 16
	// MiB).
	Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if rss := readMemory(t, agg).rss; rss > idleRSS+64<<20 {
			return fmt.Errorf("RSS %d MiB after the load, %d MiB idle", rss>>20, idleRSS>>20)
		}
		return nil
	})
	// And the aggregator still answers.
	if a, err := ordinary.ask(t.Context(), client, agg); err != nil {
		t.Fatal(err)
	} else {
		ordinary.check(t, a, false)
	}
}
