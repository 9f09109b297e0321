package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedSource is a switch-matrix source on loopback whose every answer
// the test scripts: body(k) is the k-th poll's body (k from 0).
type scriptedSource struct {
	URL  string
	mu   sync.Mutex
	body func(k int) string
	k    int
}

func newScriptedSource(t testing.TB, body func(k int) string) *scriptedSource {
	s := &scriptedSource{body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		b := s.body(s.k)
		s.k++
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/csv")
		_, _ = w.Write([]byte(b))
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// set replaces the script.
func (s *scriptedSource) set(body func(k int) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.k = body, 0
}

// oneSwitch is a body of SW-01 alone at time at (Unix ms) with a transmit
// counter.
func oneSwitch(at time.Time, tx int) func(int) string {
	return func(int) string {
		return fmt.Sprintf("switch_id,timestamp,Tx_Bytes\nSW-01,%d,%d\n", at.UnixMilli(), tx)
	}
}

// promVector is an instant query's answer: each series' labels and value.
type promVector []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// instantQuery evaluates query at at (the server's now when zero).
func instantQuery(agg *Process, query string, at time.Time) (promVector, error) {
	q := url.Values{"query": {query}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1e3, 'f', 3, 64))
	}
	r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Status != "success" || env.Data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: %d %s", query, r.Status, r.Body)
	}
	var v promVector
	if err := json.Unmarshal(env.Data.Result, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// oneValue is the value of a query that must answer one series.
func oneValue(agg *Process, query string, at time.Time) (string, error) {
	v, err := instantQuery(agg, query, at)
	if err != nil {
		return "", err
	}
	if len(v) != 1 {
		return "", fmt.Errorf("%s at %s: %d series, want 1", query, at.Format(time.RFC3339), len(v))
	}
	return fmt.Sprint(v[0].Value[1]), nil
}

// restValue is GetMetric's value and time of SW-01's Tx_Bytes.
func restValue(agg *Process) (value, timestamp string, err error) {
	r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/telemetry/GetMetric?switch_id=SW-01&metric_name=Tx_Bytes")
	if err != nil {
		return "", "", err
	}
	var a struct {
		Value     json.Number `json:"value"`
		Timestamp string      `json:"timestamp"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil {
		return "", "", fmt.Errorf("GetMetric: %d %s", r.Status, r.Body)
	}
	return a.Value.String(), a.Timestamp, nil
}

// TestHistoryRewind: a source whose time goes back. PromQL follows what
// REST serves: evaluated at the snapshot's time, it answers the value REST
// answers within a poll, the samples of the dropped later times are gone,
// and the drop is counted as rewound and logged. A time a year ahead
// followed by the true time leaves PromQL at the current time answering
// what REST does.
func TestHistoryRewind(t *testing.T) {
	t.Parallel()
	src := newScriptedSource(t, func(int) string { return "" })
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	src.set(oneSwitch(base, 100))
	agg := StartAggregator(t, "--source.url="+src.URL, "--source.interval=50ms", "--source.max-staleness=24h")
	WaitReady(t, agg, 20*time.Second)
	const tx = "fabric_switch_transmit_bytes_total"

	// followed waits until REST serves value at at, then gives PromQL one
	// poll's time (the history is appended right after the swap) to answer
	// the same at that time.
	followed := func(at time.Time, value string) {
		t.Helper()
		Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
			v, ts, err := restValue(agg)
			if err == nil && (v != value || ts != at.Format("2006-01-02T15:04:05.000Z")) {
				err = fmt.Errorf("REST serves %s at %s", v, ts)
			}
			return err
		})
		deadline := time.Now().Add(500 * time.Millisecond)
		for {
			got, err := oneValue(agg, tx, at)
			if err == nil && got == value {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("PromQL at %s: %q (%v); REST serves %s", at.Format(time.RFC3339), got, err, value)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	followed(base, "100")
	src.set(oneSwitch(base.Add(10*time.Second), 200))
	followed(base.Add(10*time.Second), "200")
	cursor := agg.Logs.Cursor()
	back := base.Add(-5 * time.Minute)
	src.set(oneSwitch(back, 50))
	followed(back, "50")

	// The later samples are gone: 10s after base, the lookback reaches
	// no sample (the correction is 5m10s before).
	if v, err := instantQuery(agg, tx, base.Add(10*time.Second)); err != nil || len(v) != 0 {
		t.Errorf("PromQL at the dropped time: %v (%v), want nothing", v, err)
	}
	line, _ := agg.Logs.WaitFor(t, cursor, 1, 5*time.Second, "the rewind's log line", MsgIs("History rewound"))
	if line.Str("level") != "WARN" || line.Str("source_name") != "default" || line.Str("dropped_snapshots") != "2" ||
		!strings.HasPrefix(line.Str("newest"), base.Add(10*time.Second).Format("2006-01-02T15:04:05")) ||
		!strings.HasPrefix(line.Str("time"), back.Format("2006-01-02T15:04:05")) {
		t.Errorf("log line: %s", line.Raw)
	}
	samples, err := scrape(agg)
	if err != nil {
		t.Fatal(err)
	}
	// Both blocks after the correction's time: base and base+10s.
	if got := sumOf(samples, "fabric_history_dropped_snapshots_total", `reason="rewound"`, `source="default"`); got != 2 {
		t.Errorf("rewound: %g, want 2", got)
	}
	if got := sumOf(samples, "fabric_history_dropped_snapshots_total", `reason="series_budget"`); got != 0 {
		t.Errorf("series_budget: %g, want 0", got)
	}

	t.Run("a year ahead, then the true time", func(t *testing.T) {
		src.set(oneSwitch(time.Now().AddDate(1, 0, 0), 7))
		Eventually(t, 10*time.Second, 10*time.Millisecond, func() error {
			if v, _, err := restValue(agg); err != nil || v != "7" {
				return fmt.Errorf("REST serves %s (%v)", v, err)
			}
			return nil
		})
		src.set(func(k int) string {
			return fmt.Sprintf("switch_id,timestamp,Tx_Bytes\nSW-01,%d,%d\n", time.Now().UnixMilli(), 1000+k)
		})
		Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
			rest, _, err := restValue(agg)
			if err != nil {
				return err
			}
			got, err := oneValue(agg, tx, time.Time{})
			if err != nil || got != rest {
				return fmt.Errorf("PromQL now: %s (%v), REST: %s", got, err, rest)
			}
			return nil
		})
		WaitReady(t, agg, 5*time.Second)
	})
}

// churnColumns are the columns of the churning source: 8 series a switch.
var churnColumns = []string{"Rx_Bytes", "Tx_Bytes", "Rx_Packets", "Tx_Packets", "Rx_Errors", "Temperature_C", "Power_W", "Ports_Up"}

// churnBody is a poll of switches switches named after generation gen, with
// no timestamp (the poll time is the snapshot's time).
func churnBody(gen, switches int) string {
	var b strings.Builder
	b.WriteString("switch_id," + strings.Join(churnColumns, ",") + "\n")
	for i := range switches {
		fmt.Fprintf(&b, "G%06d-SW-%04d", gen, i)
		for c := range churnColumns {
			fmt.Fprintf(&b, ",%d", gen*1000+i*10+c)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// TestHistoryChurn: a source whose switch ids change on every poll, 400
// polls at 50ms (more than an hour of polls at 10s), against a series
// budget of five polls' series. The history holds at most the budget,
// drops the oldest as series_budget, PromQL at the newest poll's time
// answers what REST does, /-/ready fails naming the source and the reason
// while the churn lasts and is ready again when it stops, and the process's
// peak resident memory grows by less than churnRSSBound over the peak of a
// steady run of the same polls.
func TestHistoryChurn(t *testing.T) {
	t.Parallel()
	const (
		switches = 2000
		series   = switches * 8 // in each poll's layout
		budget   = 5 * series
		churnFor = 20 * time.Second
	)
	src := newScriptedSource(t, func(int) string { return churnBody(0, switches) })
	agg := StartAggregator(t, "--source.url="+src.URL, "--source.interval=50ms", "--source.timeout=5s",
		"--source.max-staleness=10s", "--query.max-history-series="+strconv.Itoa(budget))
	WaitReady(t, agg, 20*time.Second)
	metric := func(name string, match ...string) (float64, error) {
		samples, err := scrape(agg)
		if err != nil {
			return 0, err
		}
		return sumOf(samples, name, append(match, `source="default"`)...), nil
	}
	// Steady: the same switches for as many polls as the history holds.
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		if n, err := metric("fabric_history_snapshots"); err != nil || n < 40 {
			return fmt.Errorf("%g snapshots (%v)", n, err)
		}
		return nil
	})
	steady := readMemory(t, agg).hwm

	src.set(func(k int) string { return churnBody(k+1, switches) })
	end := time.Now().Add(churnFor)
	var maxSeries float64
	notReady := ""
	for time.Now().Before(end) {
		n, err := metric("fabric_history_series")
		if err != nil {
			t.Fatal(err)
		}
		maxSeries = max(maxSeries, n)
		if r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/-/ready"); err == nil && r.Status == http.StatusServiceUnavailable &&
			strings.Contains(string(r.Body), "history") {
			notReady = string(r.Body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	peak := readMemory(t, agg).hwm
	growth := peak - steady
	t.Logf("VmHWM: %.1f MiB steady, %.1f MiB after churning (+%.1f MiB; bound %d MiB)", float64(steady)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20), churnRSSBound>>20)
	if growth > churnRSSBound {
		t.Errorf("peak resident memory grew by %.1f MiB while churning, bound %d MiB", float64(growth)/(1<<20), churnRSSBound>>20)
	}
	if maxSeries > budget || maxSeries == 0 {
		t.Errorf("fabric_history_series peaked at %g, budget %d", maxSeries, budget)
	}
	dropped, err := metric("fabric_history_dropped_snapshots_total", `reason="series_budget"`)
	if err != nil {
		t.Fatal(err)
	}
	polls, _ := metric("fabric_ingest_total", `result="success"`)
	t.Logf("churn: %g polls in all, %g snapshots dropped by the budget, series peaked at %g (budget %d)", polls, dropped, maxSeries, budget)
	// Every churning poll but the few the budget holds pushed one out.
	if dropped < 200 {
		t.Errorf("series_budget drops: %g, want most of the %s of polls at 50ms", dropped, churnFor)
	}
	if !strings.Contains(notReady, `source "default"`) || !strings.Contains(notReady, "series_budget") {
		t.Errorf("/-/ready while churning: %q, want a 503 naming the source and series_budget", notReady)
	}

	// PromQL answers the newest poll: at its time, the value REST serves;
	// at the current time, only its switches (the older ones ended).
	Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		l, err := listAt(agg)
		if err != nil {
			return err
		}
		at, _ := time.Parse(time.RFC3339Nano, l.time)
		got, err := oneValue(agg, fmt.Sprintf(`fabric_switch_transmit_bytes_total{switch_id=%q}`, l.id), at)
		if err != nil || got != l.tx {
			return fmt.Errorf("PromQL at %s: %s (%v), REST %s", l.time, got, err, l.tx)
		}
		v, err := instantQuery(agg, "count(fabric_switch_transmit_bytes_total)", time.Time{})
		if err != nil || len(v) != 1 || fmt.Sprint(v[0].Value[1]) != strconv.Itoa(switches) {
			return fmt.Errorf("PromQL now counts %v (%v), want %d", v, err, switches)
		}
		return nil
	})

	// Steady again: ready within a few polls.
	src.set(func(int) string { return churnBody(1, switches) })
	WaitReady(t, agg, 10*time.Second)

}

// churnRSSBound bounds how much the aggregator's peak resident memory may
// grow while TestHistoryChurn churns, over its peak in the steady polls
// before. The history holds at most the budget, 80,000 series in five
// layouts of 2,000 rows, about 2 MB (8 bytes a sample and ~100 bytes a row
// of layout); with the garbage collector's headroom (GOGC=100) and a
// poll's worth of new layout and strings in flight that is under 8 MB. The
// rest is margin for the race detector's shadow memory (up to 8× the heap
// it tracks) and the allocator. Without the budget, the same churn holds
// 400 layouts and grows the peak by several times the bound (see
// docs/reliability.md).
const churnRSSBound = 64 << 20

// listEntry is the newest poll as REST serves it: its time and one switch's
// transmit counter.
type listEntry struct{ time, id, tx string }

func listAt(agg *Process) (listEntry, error) {
	r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/telemetry/ListMetrics?metric_name=Tx_Bytes")
	if err != nil {
		return listEntry{}, err
	}
	a, err := decodeList(r.Body)
	if err != nil {
		return listEntry{}, err
	}
	if len(a.Switches) == 0 {
		return listEntry{}, fmt.Errorf("no switches")
	}
	sw := a.Switches[len(a.Switches)/2]
	return listEntry{time: a.Timestamp, id: sw.SwitchID, tx: string(sw.Metrics["Tx_Bytes"])}, nil
}

// rangeQuery is a query_range answer's result, decoded as JSON: the same
// samples give an equal value.
func rangeQuery(agg *Process, query string, start, end time.Time, step time.Duration) ([]any, error) {
	q := url.Values{"query": {query}, "step": {step.String()},
		"start": {strconv.FormatFloat(float64(start.UnixMilli())/1e3, 'f', 3, 64)},
		"end":   {strconv.FormatFloat(float64(end.UnixMilli())/1e3, 'f', 3, 64)}}
	r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/api/v1/query_range?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var env struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []any  `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Status != "success" || env.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("%s: %d %s", query, r.Status, r.Body)
	}
	return env.Data.Result, nil
}

// TestRestartKeepsHistory: with --storage.path, the sealed history
// survives a restart. The real simulator moves on every 100ms and the
// aggregator polls it as often, so a run of 30 polls is sealed and written
// within seconds (fabric_history_storage_sealed_through_timestamp_seconds
// says up to when); after SIGTERM and a start on the same path, as soon as
// the aggregator is ready, query_range over the sealed period answers what
// it answered before, sample for sample, while new polls go on.
func TestRestartKeepsHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	simAddr := FreeAddr(t)
	StartSimulator(t, "--web.listen-address="+simAddr, "--switches=4", "--interval=100ms", "--incident-rate=0", "--seed=5")
	args := []string{"--source.url=http://" + simAddr + "/counters", "--source.interval=100ms", "--source.timeout=1s",
		"--source.max-staleness=1m", "--storage.path=" + dir}
	start := time.Now().Add(-time.Second)
	agg := StartAggregator(t, args...)
	WaitReady(t, agg, 20*time.Second)
	const sealedThrough = `fabric_history_storage_sealed_through_timestamp_seconds{source="default"}`
	var through time.Time
	Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		m, err := scrape(agg)
		if err != nil {
			return err
		}
		if m[sealedThrough] <= 0 {
			return fmt.Errorf("%s %v", sealedThrough, m[sealedThrough])
		}
		through = time.UnixMilli(int64(math.Round(m[sealedThrough] * 1e3)))
		return nil
	})
	queries := []string{"fabric_switch_transmit_bytes_total", "rate(fabric_switch_receive_bytes_total[1s])", "fabric_switch_temperature_celsius"}
	const step = 50 * time.Millisecond
	before := map[string][]any{}
	for _, q := range queries {
		res, err := rangeQuery(agg, q, start, through, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 {
			t.Fatalf("%s before the restart: %d series, want one per switch: %v", q, len(res), res)
		}
		before[q] = res
	}
	agg.Stop(t)

	restarted := StartAggregator(t, args...)
	WaitReady(t, restarted, 20*time.Second)
	for _, q := range queries {
		res, err := rangeQuery(restarted, q, start, through, step)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res, before[q]) {
			t.Errorf("%s over %s..%s after the restart:\n got  %v\n want %v", q, start.Format(time.RFC3339Nano), through.Format(time.RFC3339Nano), res, before[q])
		}
	}
	restarted.Logs.WaitFor(t, 0, 1, 5*time.Second, "history loaded", MsgIs("Loaded the history kept on disk"))
}
