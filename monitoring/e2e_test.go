package monitoring_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/schema"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// TestQueriesAgainstAggregator runs the real binaries (a simulator ticking
// every second, the aggregator polling it and recording its self-metrics
// every second) and sends every dashboard and rule expression to the
// aggregator's own /api/v1/query_range, as Grafana's "Fabric aggregator"
// data source would: each must run without error. The data dashboards'
// panels for the switch matrix must also return data, and so must every
// dashboard query of self-metrics (snapshot age, source up, ingestion,
// HTTP, runtime: the aggregator records them as a scrape of itself would)
// that does not filter by value. And every metric the dashboards and rules
// select is on the binary's live /metrics, unless Prometheus makes it (up,
// ALERTS, recording rules), only a per-port source has it, or it is the
// poll log's (package kafkalog, on an aggregator that publishes to or
// follows Kafka; TestSelfMetricNamesExposed vouches for those names).
func TestQueriesAgainstAggregator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the binaries; skipped with -short")
	}
	base := startStack(t)

	rules, recorded := ruleExpressions(t)
	dash := dashboardExpressions(t)

	// Live /metrics of the binary: every self-metric, and the data metrics
	// of a switch matrix source (per-port ones need a per-port source; the
	// schema table vouches for them in TestMetricNamesExposed).
	live := liveNames(t, base+"/metrics")
	for _, m := range schema.Default().Known() {
		if strings.HasPrefix(m.Name, schema.Namespace+"_"+schema.PortSubsystem+"_") {
			live[m.Name] = true
		}
	}
	for _, e := range append(dash, rules...) {
		names, err := metricNames(e.expr)
		if err != nil {
			t.Fatalf("%s: %v", e.where, err)
		}
		for _, n := range names {
			if !live[n] && !recorded[n] && n != "up" && !strings.HasPrefix(n, "ALERTS") && !pollLogMetric(n) {
				t.Errorf("%s: %s is not on the aggregator's /metrics", e.where, n)
			}
		}
	}

	// Every expression through the query API; history needs a few polls
	// for rate() over the substituted 1m windows.
	time.Sleep(3 * time.Second)
	vars := map[string]string{"switch_id": "SW-01", "instance": ".*", "source": ".*"}
	end := time.Now()
	// The check can fail: a query the engine rejects is an error.
	if _, err := queryRange(base, "rate(fabric_switch_ports[1m]) + on (nosuch) group_left rate(fabric_switch_ports)", end.Add(-time.Minute), end, 5*time.Second); err == nil {
		t.Error("an invalid query succeeded: the error check is broken")
	}
	for _, e := range append(dash, rules...) {
		expr := substituteWith(e.expr, vars)
		n, err := queryRange(base, expr, end.Add(-2*time.Minute), end, 5*time.Second)
		if err != nil {
			t.Errorf("%s: %v\n\t%s", e.where, err, expr)
			continue
		}
		// Switch detail shows every switch-matrix metric of SW-01: each of
		// those panels must have data (per-port panels need a per-port
		// source, and the aggregator health dashboard Prometheus).
		if strings.Contains(e.where, "switch-detail.json panel") && strings.Contains(expr, "fabric_switch_") && n == 0 {
			t.Errorf("%s: no data from the aggregator\n\t%s", e.where, expr)
		}
		if n == 0 && strings.HasPrefix(e.where, "dashboards/") && selfMetricsOnly(t, expr) && !filtersByValue(t, expr) && !selectsPollLog(t, expr) {
			t.Errorf("%s: no self-metrics from the aggregator\n\t%s", e.where, expr)
		}
	}
}

// selfMetricsOnly reports whether expr selects self-metrics alone (names
// with a prefix the schema reserves for them) or up.
func selfMetricsOnly(t *testing.T, expr string) bool {
	t.Helper()
	names, err := metricNames(expr)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n != "up" && !slices.ContainsFunc(schema.ReservedPrefixes, func(p string) bool { return strings.HasPrefix(n, p) }) {
			return false
		}
	}
	return len(names) > 0
}

// pollLogMetric reports whether n is one of the poll log's metrics or a
// partitioned replica's (or a series of one of their histograms).
func pollLogMetric(n string) bool {
	kafkaOnly := func(m string) bool {
		return slices.Contains(monitoring.PollLogMetrics, m) || slices.Contains(monitoring.PartitionedMetrics, m)
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if m, ok := strings.CutSuffix(n, suffix); ok && kafkaOnly(m) {
			return true
		}
	}
	return kafkaOnly(n)
}

// selectsPollLog reports whether expr selects a poll log metric or a
// partitioned replica's, which an aggregator without Kafka does not have.
func selectsPollLog(t *testing.T, expr string) bool {
	t.Helper()
	names, err := metricNames(expr)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(names, pollLogMetric)
}

// filtersByValue reports whether expr has a comparison without bool, which
// may rightly leave nothing (errors > 0).
func filtersByValue(t *testing.T, expr string) bool {
	t.Helper()
	node, err := newParser().ParseExpr(expr)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if b, ok := n.(*parser.BinaryExpr); ok && b.Op.IsComparisonOperator() && !b.ReturnBool {
			found = true
		}
		return nil
	})
	return found
}

// startStack builds and starts the simulator and the aggregator on free
// loopback ports and returns the aggregator's base URL once it is ready.
func startStack(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := repoRoot(t)
	for _, cmd := range []string{"telemetry-simulator", "telemetry-aggregator"} {
		build := exec.CommandContext(testContext(t), "go", "build", "-o", filepath.Join(dir, cmd), "./cmd/"+cmd)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", cmd, err, out)
		}
	}
	simAddr, aggAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	testproc.Start(t, filepath.Join(dir, "telemetry-simulator"),
		"--web.listen-address="+simAddr, "--interval=1s", "--switches=5")
	testproc.Start(t, filepath.Join(dir, "telemetry-aggregator"),
		"--web.listen-address="+aggAddr, "--source.url=http://"+simAddr+"/counters", "--source.interval=1s",
		"--query.self-metrics-interval=1s")

	base := "http://" + aggAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("aggregator not ready after 30s (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveNames are the sample and family names of a /metrics page.
func liveNames(t *testing.T, u string) map[string]bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", u, resp.Status, err)
	}
	names := map[string]bool{}
	for line := range strings.Lines(string(body)) {
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			if f := strings.Fields(line); len(f) >= 3 {
				names[f[2]] = true
			}
		case strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "":
		default:
			if i := strings.IndexAny(line, "{ "); i > 0 {
				names[line[:i]] = true
			}
		}
	}
	return names
}

// substituteWith replaces Grafana's macros like substitute, and the
// dashboard variables with the given values (others with "x").
func substituteWith(expr string, vars map[string]string) string {
	return dashboardVar.ReplaceAllStringFunc(grafanaMacros.Replace(expr), func(v string) string {
		name := strings.Trim(v, "${}")
		name, _, _ = strings.Cut(name, ":")
		if val, ok := vars[name]; ok {
			return val
		}
		return "x"
	})
}

var promErrorRe = regexp.MustCompile(`"error"\s*:`)

// queryRange POSTs a range query the way Grafana does and returns the number
// of series in the result.
func queryRange(base, expr string, start, end time.Time, step time.Duration) (int, error) {
	form := url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}
	resp, err := http.PostForm(base+"/api/v1/query_range", form)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("HTTP %d, not JSON: %.200s", resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusOK || r.Status != "success" || promErrorRe.Match(body) && r.Error != "" {
		return 0, fmt.Errorf("HTTP %d, status %q: %s", resp.StatusCode, r.Status, r.Error)
	}
	if r.Data.ResultType != "matrix" {
		return 0, fmt.Errorf("result type %q, want matrix", r.Data.ResultType)
	}
	return len(r.Data.Result), nil
}
