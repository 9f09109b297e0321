package monitoring_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/schema"
)

// expression is one PromQL expression of the stack and where it is.
type expression struct {
	where string // file and panel, variable or rule
	expr  string // as written, Grafana macros and all
}

// dashboardExpressions extracts every PromQL expression of the dashboard
// JSON files: each target's expr, and each query variable's query
// (label_values(metric, label) and query_result(expr) give their
// expression).
func dashboardExpressions(t *testing.T) []expression {
	t.Helper()
	var out []expression
	for _, path := range glob(t, "dashboards/*.json") {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		file := rel(t, path)[0]
		walkTargets(d, file, &out)
		tmpl, _ := d["templating"].(map[string]any)
		vars, _ := tmpl["list"].([]any)
		for _, v := range vars {
			v, _ := v.(map[string]any)
			if v["type"] != "query" {
				continue
			}
			q := v["query"]
			if m, ok := q.(map[string]any); ok { // newer Grafana: {"query": "...", "qryType": ...}
				q = m["query"]
			}
			s, _ := q.(string)
			if expr, ok := variableExpression(s); ok {
				out = append(out, expression{where: fmt.Sprintf("%s variable $%v", file, v["name"]), expr: expr})
			}
		}
	}
	return out
}

// walkTargets appends the expr of every object under v, naming it by the
// innermost panel title.
func walkTargets(v any, where string, out *[]expression) {
	switch v := v.(type) {
	case map[string]any:
		if title, ok := v["title"].(string); ok {
			if _, isPanel := v["type"]; isPanel {
				where = strings.SplitN(where, " panel ", 2)[0] + " panel " + fmt.Sprintf("%q", title)
			}
		}
		if expr, ok := v["expr"].(string); ok {
			*out = append(*out, expression{where: where, expr: expr})
		}
		for _, child := range v {
			walkTargets(child, where, out)
		}
	case []any:
		for _, child := range v {
			walkTargets(child, where, out)
		}
	}
}

var (
	labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	queryResultRe = regexp.MustCompile(`^\s*query_result\((.+)\)\s*$`)
)

// variableExpression is the PromQL inside a Grafana Prometheus variable
// query, if it has any: label_values(label) and label_names() have none.
func variableExpression(q string) (string, bool) {
	if m := labelValuesRe.FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	if m := queryResultRe.FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	return "", false
}

// ruleExpressions is every alert and record expression of prometheus/*.yml.
func ruleExpressions(t *testing.T) (exprs []expression, recorded map[string]bool) {
	t.Helper()
	recorded = map[string]bool{}
	for _, f := range loadRules(t) {
		file := rel(t, f.path)[0]
		for _, g := range f.groups {
			for _, r := range g.Rules {
				name := r.Alert
				if r.Record != "" {
					name = r.Record
					recorded[r.Record] = true
				}
				exprs = append(exprs, expression{where: fmt.Sprintf("%s rule %s", file, name), expr: r.Expr})
			}
		}
	}
	return exprs, recorded
}

// grafanaMacros replaces Grafana's global variables with values that make
// the expression valid PromQL. Longer names come first: the replacer takes
// the first match in argument order.
var grafanaMacros = strings.NewReplacer(
	"${__rate_interval}", "1m", "$__rate_interval", "1m",
	"${__interval_ms}", "60000", "$__interval_ms", "60000",
	"${__interval}", "1m", "$__interval", "1m",
	"${__range_s}", "3600", "$__range_s", "3600",
	"${__range_ms}", "3600000", "$__range_ms", "3600000",
	"${__range}", "1h", "$__range", "1h",
)

// dashboardVar matches the dashboard's own variables ($switch_id,
// ${instance}, ${switch_id:regex}); they only ever stand in label values.
var dashboardVar = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*(:[A-Za-z]+)?\}|\$[A-Za-z_][A-Za-z0-9_]*`)

func substitute(expr string) string {
	return dashboardVar.ReplaceAllString(grafanaMacros.Replace(expr), "x")
}

// metricNames parses expr (after substitution) and returns the metric name
// of every vector selector, given as a name or as a __name__ matcher.
func metricNames(expr string) ([]string, error) {
	node, err := newParser().ParseExpr(substitute(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		found := vs.Name != ""
		if found {
			names = append(names, vs.Name)
		}
		for _, m := range vs.LabelMatchers {
			if m.Name != model.MetricNameLabel || m.Value == vs.Name {
				continue
			}
			if m.Type != labels.MatchEqual {
				bad = fmt.Errorf("selector %s matches metric names by pattern; name them so the test can check them", vs)
				continue
			}
			names = append(names, m.Value)
			found = true
		}
		if !found {
			bad = fmt.Errorf("selector %s names no metric", vs)
		}
		return nil
	})
	return names, bad
}

// allowedNames is what a dashboard or rule may select: what the real
// exporter, the poll log's publisher and followers and the fan-out to peers
// expose, the schema's data metrics, the recording rules' outputs, and what
// Prometheus itself makes (up, ALERTS).
func allowedNames(t *testing.T, recorded map[string]bool) map[string]string {
	t.Helper()
	allowed := map[string]string{
		"up": "Prometheus", "ALERTS": "Prometheus", "ALERTS_FOR_STATE": "Prometheus",
	}
	for n := range exposedNames(t) {
		allowed[n] = "exporter /metrics"
	}
	for _, m := range schema.Default().Known() {
		allowed[m.Name] = "schema.Default()"
	}
	for n := range recorded {
		allowed[n] = "recording rule"
	}
	return allowed
}

// TestMetricNamesExposed parses every PromQL expression of the dashboards
// and the rule files and checks that each metric it selects is one the
// aggregator really exposes (or a recording rule records). A metric renamed
// in the schema table or the exporter fails this test until the dashboards
// (go generate ./dashboards) and rules follow.
func TestMetricNamesExposed(t *testing.T) {
	rules, recorded := ruleExpressions(t)
	dash := dashboardExpressions(t)
	if len(dash) < 30 || len(rules) < 10 {
		t.Fatalf("found only %d dashboard and %d rule expressions; is the extraction broken?", len(dash), len(rules))
	}
	allowed := allowedNames(t, recorded)
	used := map[string]bool{}
	for _, e := range append(dash, rules...) {
		names, err := metricNames(e.expr)
		if err != nil {
			t.Errorf("%s: %v\n\t%s", e.where, err, e.expr)
			continue
		}
		if len(names) == 0 && !strings.Contains(e.expr, "vector(") {
			t.Errorf("%s: selects no metric: %s", e.where, e.expr)
		}
		for _, n := range names {
			used[n] = true
			if _, ok := allowed[n]; !ok {
				t.Errorf("%s: metric %s is not exposed by the aggregator (nor recorded by a rule)\n\t%s", e.where, n, e.expr)
			}
		}
	}
	// Every recording rule is used by a dashboard or an alert; every data
	// metric is shown somewhere (Switch detail has one panel per metric).
	for n := range recorded {
		if !used[n] {
			t.Errorf("recording rule %s is used by no dashboard or alert", n)
		}
	}
	for _, m := range schema.Default().Known() {
		if !used[m.Name] {
			t.Errorf("schema metric %s appears in no dashboard", m.Name)
		}
	}
}

// TestMetricNameCheckCatchesRenames makes sure the check above can fail: a
// misspelt data metric, a renamed self-metric and a name hidden in a
// __name__ matcher are all caught.
func TestMetricNameCheckCatchesRenames(t *testing.T) {
	_, recorded := ruleExpressions(t)
	allowed := allowedNames(t, recorded)
	for _, expr := range []string{
		`rate(fabric_switch_rx_bytes_total{switch_id=~"$switch_id"}[$__rate_interval])`,
		`histogram_quantile(0.99, sum by (le) (rate(fabric_ingest_cycle_seconds_bucket[5m])))`,
		`{__name__="fabric_switch_temp_celsius"}`,
	} {
		names, err := metricNames(expr)
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		unknown := slices.DeleteFunc(names, func(n string) bool { _, ok := allowed[n]; return ok })
		if len(unknown) != 1 {
			t.Errorf("%s: want exactly one unknown metric, got %v", expr, unknown)
		}
	}
	if _, err := metricNames(`{__name__=~"fabric_.*"}`); err == nil {
		t.Error("a __name__ regex must be refused: its metrics cannot be checked")
	}
}

// TestSelfMetricNamesExposed checks the names in package monitoring against
// the exporter's real /metrics.
func TestSelfMetricNamesExposed(t *testing.T) {
	exposed := exposedNames(t)
	for _, n := range monitoring.SelfMetrics {
		if !exposed[n] {
			t.Errorf("monitoring: %s is not on the exporter's /metrics", n)
		}
	}
	for _, n := range monitoring.PollLogMetrics {
		if !exposed[n] {
			t.Errorf("monitoring: %s is not among the poll log's metrics (package kafkalog)", n)
		}
	}
	for _, n := range monitoring.PartitionedMetrics {
		if !exposed[n] {
			t.Errorf("monitoring: %s is not among a partitioned replica's metrics (packages kafkalog, cluster)", n)
		}
	}
	_, recorded := ruleExpressions(t)
	for _, n := range monitoring.RecordingRules {
		if !recorded[n] {
			t.Errorf("monitoring: recording rule %s is not in prometheus/recording.yml", n)
		}
	}
}

// TestExpressionExtraction covers the Grafana syntax the extraction must
// understand.
func TestExpressionExtraction(t *testing.T) {
	for q, want := range map[string]string{
		`label_values(fabric_switch_ports, switch_id)`:                 "fabric_switch_ports",
		`label_values(up{job="fabric-aggregator"}, instance)`:          `up{job="fabric-aggregator"}`,
		`query_result(topk(5, fabric_switch_temperature_celsius))`:     "topk(5, fabric_switch_temperature_celsius)",
		`label_values(switch_id)`:                                      "",
		`label_names()`:                                                "",
		`label_values(rate(fabric_switch_symbol_errors_total[5m]), x)`: "rate(fabric_switch_symbol_errors_total[5m])",
	} {
		got, _ := variableExpression(q)
		if got != want {
			t.Errorf("variableExpression(%q) = %q, want %q", q, got, want)
		}
	}
	for in, want := range map[string]string{
		`rate(x{a=~"$switch_id"}[$__rate_interval])`:          `rate(x{a=~"x"}[1m])`,
		`increase(x{a="${switch_id:regex}"}[$__range])`:       `increase(x{a="x"}[1h])`,
		`x[$__interval] offset $__range_s`:                    `x[1m] offset 3600`,
		`sum(rate(x{i=~"${instance}"}[${__rate_interval}]))`:  `sum(rate(x{i=~"x"}[1m]))`,
		`time() - max(fabric_snapshot_timestamp_seconds) > 0`: `time() - max(fabric_snapshot_timestamp_seconds) > 0`,
	} {
		if got := substitute(in); got != want {
			t.Errorf("substitute(%q) = %q, want %q", in, got, want)
		}
	}
}
