package monitoring_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// TestPromtool runs the real promtool (pinned in tools/go.mod) over the
// Prometheus configuration, the rule files and the rule unit tests, and
// amtool over the Alertmanager configuration.
func TestPromtool(t *testing.T) {
	promtool := tool(t, "promtool")
	t.Run("check config", func(t *testing.T) {
		// Also checks the rule files prometheus.yml loads.
		out := run(t, promtool, "check", "config", "prometheus.yml")
		if !strings.Contains(out, "rule files found") {
			t.Errorf("prometheus.yml loads no rule files:\n%s", out)
		}
	})
	t.Run("check rules", func(t *testing.T) {
		run(t, promtool, append([]string{"check", "rules"}, rel(t, glob(t, "prometheus/*.yml")...)...)...)
	})
	t.Run("test rules", func(t *testing.T) {
		run(t, promtool, append([]string{"test", "rules"}, rel(t, glob(t, "prometheus/tests/*.yml")...)...)...)
	})
	t.Run("amtool check-config", func(t *testing.T) {
		run(t, tool(t, "amtool"), "check-config", "alertmanager/alertmanager.yml")
	})
}

// runbookURL is where every alert's runbook_url points, followed by the
// alert's section anchor.
const runbookURL = "https://github.com/fabrictelemetry/aggregator/blob/main/docs/runbook.md#"

// TestAlertConventions checks every alert for what the on-call engineer
// needs: a for: window, a severity, a summary, a description, and a
// runbook_url whose anchor is a section of docs/runbook.md.
func TestAlertConventions(t *testing.T) {
	anchors := runbookAnchors(t)
	n := 0
	for _, f := range loadRules(t) {
		for _, g := range f.groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				n++
				if r.For <= 0 {
					t.Errorf("%s: no for: window", r.Alert)
				}
				if s := r.Labels["severity"]; s != "warning" && s != "critical" {
					t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("%s: no %s annotation", r.Alert, a)
					}
				}
				want := runbookURL + strings.ToLower(r.Alert)
				if u := r.Annotations["runbook_url"]; u != want {
					t.Errorf("%s: runbook_url %q, want %q", r.Alert, u, want)
				}
				if !anchors[strings.ToLower(r.Alert)] {
					t.Errorf("%s: docs/runbook.md has no section ## %s", r.Alert, r.Alert)
				}
			}
		}
	}
	if n < 10 {
		t.Errorf("found %d alerts, want at least the 10 of the issue", n)
	}
}

// runbookAnchors are the anchors GitHub gives the headings of
// docs/runbook.md.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "runbook.md"))
	if err != nil {
		t.Fatal(err)
	}
	notAnchor := regexp.MustCompile(`[^a-z0-9 _-]`)
	anchors := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			a := notAnchor.ReplaceAllString(strings.ToLower(strings.TrimSpace(h)), "")
			anchors[strings.ReplaceAll(a, " ", "-")] = true
		}
	}
	return anchors
}

// ruleTestFile is the part of a promtool unit test file this test reads.
type ruleTestFile struct {
	Tests []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			EvalTime  model.Duration `yaml:"eval_time"`
			Alertname string         `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromqlExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

// TestEveryAlertUnitTested checks that the promtool unit tests cover every
// alert on both sides of its for: window: in one test, an evaluation where it
// must not fire yet, no more than the for: window before an evaluation where
// it fires with its severity and all its annotations. And that every
// recording rule has a promql_expr_test.
func TestEveryAlertUnitTested(t *testing.T) {
	type window struct{ quiet, firing []time.Duration }
	covered := map[string]*window{}
	exprTested := map[string]bool{}
	for _, path := range glob(t, "prometheus/tests/*.yml") {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f ruleTestFile
		if err := yaml.Unmarshal(b, &f); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, tc := range f.Tests {
			perTest := map[string]*window{}
			for _, a := range tc.AlertRuleTest {
				w := perTest[a.Alertname]
				if w == nil {
					w = &window{}
					perTest[a.Alertname] = w
				}
				if len(a.ExpAlerts) == 0 {
					w.quiet = append(w.quiet, time.Duration(a.EvalTime))
					continue
				}
				complete := true
				for _, e := range a.ExpAlerts {
					complete = complete && e.ExpLabels["severity"] != "" &&
						e.ExpAnnotations["summary"] != "" && e.ExpAnnotations["description"] != "" && e.ExpAnnotations["runbook_url"] != ""
				}
				if complete {
					w.firing = append(w.firing, time.Duration(a.EvalTime))
				} else {
					t.Errorf("%s: %q: expected %s alerts need severity and summary, description and runbook_url", path, tc.Name, a.Alertname)
				}
			}
			for name, w := range perTest {
				if covered[name] == nil {
					covered[name] = &window{}
				}
				// Pairs only count within one test (one set of input series).
				for _, fire := range w.firing {
					for _, quiet := range w.quiet {
						if quiet < fire {
							covered[name].quiet = append(covered[name].quiet, fire-quiet)
						}
					}
					covered[name].firing = append(covered[name].firing, fire)
				}
			}
			for _, e := range tc.PromqlExprTest {
				exprTested[e.Expr] = true
			}
		}
	}

	for _, f := range loadRules(t) {
		for _, g := range f.groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					tested := false
					for expr := range exprTested {
						tested = tested || strings.Contains(expr, r.Record)
					}
					if !tested {
						t.Errorf("recording rule %s has no promql_expr_test", r.Record)
					}
					continue
				}
				w := covered[r.Alert]
				if w == nil || len(w.firing) == 0 {
					t.Errorf("alert %s: no unit test where it fires", r.Alert)
					continue
				}
				// The closest quiet evaluation before a firing one must lie
				// within the for: window, i.e. while the alert is pending.
				ok := false
				for _, gap := range w.quiet {
					ok = ok || gap <= time.Duration(r.For)
				}
				if !ok {
					t.Errorf("alert %s: no unit test checks it is still quiet within its for: %s before it fires", r.Alert, r.For)
				}
			}
		}
	}
}
