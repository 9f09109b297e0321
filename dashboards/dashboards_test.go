package dashboards_test

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"

	"github.com/fabrictelemetry/aggregator/dashboards"
	"github.com/fabrictelemetry/aggregator/schema"
)

func generate(t *testing.T, table *schema.Table) []dashboards.File {
	t.Helper()
	files, err := dashboards.All(table)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestCommittedJSONIsGenerated holds the provisioned JSON files equal to
// what the code generates: edit the Go code, then run go generate
// ./dashboards.
func TestCommittedJSONIsGenerated(t *testing.T) {
	files := generate(t, schema.Default())
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
		want, err := dashboards.Marshal(f.Dashboard)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f.Name)
		if err != nil {
			t.Errorf("%s: %v (run go generate ./dashboards)", f.Name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generated dashboard: run go generate ./dashboards", f.Name)
		}
	}
	onDisk, _ := filepath.Glob("*.json")
	slices.Sort(onDisk)
	slices.Sort(names)
	if !slices.Equal(onDisk, names) {
		t.Errorf("JSON files %v, generated %v: remove the stale ones", onDisk, names)
	}
	want := []string{"aggregator-health.json", "fabric-overview.json", "switch-detail.json"}
	if !slices.Equal(names, want) {
		t.Errorf("generated %v, want %v", names, want)
	}
}

// TestJSONDecodesWithSDK decodes every committed file strictly with the
// foundation SDK (unknown fields, wrong types and missing required fields
// fail) and checks what provisioning and the other dashboards rely on: a
// UID, a $datasource variable of type datasource for Prometheus, every panel
// and query on that variable, and unique panel ids.
func TestJSONDecodesWithSDK(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	files, _ := filepath.Glob("*.json")
	if len(files) == 0 {
		t.Fatal("no dashboard JSON")
	}
	uids := map[string]string{}
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			var d dashboard.Dashboard
			if err := strictDecode(b, &d); err != nil {
				t.Fatalf("strict decoding: %v", err)
			}
			if d.Uid == nil || *d.Uid == "" || len(*d.Uid) > 40 {
				t.Fatalf("UID %v: want 1 to 40 characters", d.Uid)
			}
			if other, dup := uids[*d.Uid]; dup {
				t.Errorf("UID %s also used by %s", *d.Uid, other)
			}
			uids[*d.Uid] = name
			if d.Title == nil || *d.Title == "" {
				t.Error("no title")
			}

			hasDatasource := false
			for _, v := range d.Templating.List {
				if v.Name == "datasource" {
					hasDatasource = v.Type == dashboard.VariableTypeDatasource &&
						v.Query != nil && v.Query.String != nil && *v.Query.String == "prometheus"
				}
				if v.Type == dashboard.VariableTypeQuery && !usesDatasourceVar(v.Datasource) {
					t.Errorf("variable $%s does not query ${datasource}", v.Name)
				}
			}
			if !hasDatasource {
				t.Error("no $datasource variable of type datasource for prometheus")
			}

			ids := map[uint32]bool{}
			targets := 0
			for _, p := range panels(d) {
				if p.Id == nil || ids[*p.Id] {
					t.Errorf("panel %q: missing or duplicate id", title(p))
				} else {
					ids[*p.Id] = true
				}
				if !usesDatasourceVar(p.Datasource) {
					t.Errorf("panel %q does not use ${datasource}", title(p))
				}
				for _, q := range p.Targets {
					targets++
					pq, ok := promQuery(q)
					if !ok {
						t.Errorf("panel %q: query %T is not a Prometheus query", title(p), q)
						continue
					}
					if pq.Expr == "" || pq.RefId == nil || *pq.RefId == "" {
						t.Errorf("panel %q: query without expr or refId", title(p))
					}
					if strings.Contains(pq.Expr, "rate(") && strings.Contains(pq.Expr, "[5m]") {
						t.Errorf("panel %q: use $__rate_interval, not a fixed window: %s", title(p), pq.Expr)
					}
				}
			}
			if targets == 0 {
				t.Error("no queries")
			}
		})
	}
}

// strictDecode decodes a dashboard the way the SDK documents
// (plugins.RegisterDefaultPlugins, then json.Unmarshal) and fails unless
// the SDK's types hold all of it: encoding the result again must give the
// same JSON, so an unknown field, a misplaced option or a wrong type is an
// error. (The SDK's own UnmarshalJSONStrict cannot be used: in v0.0.22 it
// returns an empty error list as a non-nil error, and drops every panel.)
func strictDecode(b []byte, d *dashboard.Dashboard) error {
	if err := json.Unmarshal(b, d); err != nil {
		return err
	}
	again, err := dashboards.Marshal(*d)
	if err != nil {
		return err
	}
	var want, got any
	if err := json.Unmarshal(b, &want); err != nil {
		return err
	}
	if err := json.Unmarshal(again, &got); err != nil {
		return err
	}
	if path, diff := firstDifference(want, got, "$"); diff != "" {
		return fmt.Errorf("the SDK does not hold %s: %s", path, diff)
	}
	return nil
}

// firstDifference compares two decoded JSON documents and describes the
// first place they differ.
func firstDifference(want, got any, path string) (string, string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path, fmt.Sprintf("%T became %T", want, got)
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			wv, inW := w[k]
			gv, inG := g[k]
			switch {
			case !inG:
				return path + "." + k, "lost"
			case !inW:
				return path + "." + k, fmt.Sprintf("added as %v", gv)
			}
			if p, d := firstDifference(wv, gv, path+"."+k); d != "" {
				return p, d
			}
		}
		return "", ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return path, fmt.Sprintf("%v became %v", want, got)
		}
		for i := range w {
			if p, d := firstDifference(w[i], g[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return p, d
			}
		}
		return "", ""
	default:
		if want != got {
			return path, fmt.Sprintf("%v became %v", want, got)
		}
		return "", ""
	}
}

// TestStrictDecodingFails makes sure strictDecode is not lenient: an unknown
// field, on the dashboard or on a panel, and a wrong type are errors.
func TestStrictDecodingFails(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	b, err := os.ReadFile("fabric-overview.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(map[string]any){
		func(d map[string]any) { d["nosuchfield"] = 1 },
		func(d map[string]any) { d["uid"] = 3 },
		func(d map[string]any) { d["panels"].([]any)[1].(map[string]any)["bogus"] = true },
		func(d map[string]any) {
			d["panels"].([]any)[1].(map[string]any)["targets"].([]any)[0].(map[string]any)["exprr"] = "up"
		},
	} {
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		edit(doc)
		edited, _ := json.Marshal(doc)
		var d dashboard.Dashboard
		if err := strictDecode(edited, &d); err == nil {
			t.Errorf("strictDecode accepted an edited dashboard")
		}
	}
}

func usesDatasourceVar(ref *dashboard.DataSourceRef) bool {
	return ref != nil && ref.Uid != nil && *ref.Uid == "${datasource}" && ref.Type != nil && *ref.Type == "prometheus"
}

// panels are the dashboard's panels, rows left out and collapsed rows'
// panels included.
func panels(d dashboard.Dashboard) []dashboard.Panel {
	var out []dashboard.Panel
	for _, p := range d.Panels {
		if p.Panel != nil {
			out = append(out, *p.Panel)
		}
		if p.RowPanel != nil {
			out = append(out, p.RowPanel.Panels...)
		}
	}
	return out
}

func title(p dashboard.Panel) string {
	if p.Title == nil {
		return ""
	}
	return *p.Title
}

func exprs(p dashboard.Panel) []string {
	var out []string
	for _, q := range p.Targets {
		if pq, ok := promQuery(q); ok {
			out = append(out, pq.Expr)
		}
	}
	return out
}

// promQuery is a panel's query as a Prometheus query: a value when built,
// a pointer when decoded.
func promQuery(q variants.Dataquery) (*prometheus.Dataquery, bool) {
	switch q := q.(type) {
	case *prometheus.Dataquery:
		return q, true
	case prometheus.Dataquery:
		return &q, true
	}
	return nil, false
}

func find(t *testing.T, files []dashboards.File, name string) dashboard.Dashboard {
	t.Helper()
	for _, f := range files {
		if f.Name == name {
			return f.Dashboard
		}
	}
	t.Fatalf("no %s", name)
	return dashboard.Dashboard{}
}

// TestSwitchDetailFollowsSchema checks that Switch detail has one panel per
// schema metric, counters as rates, and that a new schema entry gets a
// panel without touching the dashboard code.
func TestSwitchDetailFollowsSchema(t *testing.T) {
	table := schema.Default()
	table.Add(schema.Metric{Column: "Fan_Speed_RPM", Name: "fabric_switch_fan_speed_rpm", Type: schema.Gauge, Help: "Fan speed.", Known: true})
	table.Add(schema.Metric{Column: "FEC_Corrected", Name: "fabric_switch_fec_corrected_total", Type: schema.Counter, Help: "Corrected FEC blocks.", Known: true})
	d := find(t, generate(t, table), "switch-detail.json")

	byMetric := map[string][]string{}
	titles := map[string][]string{}
	for _, p := range panels(d) {
		for _, e := range exprs(p) {
			for _, m := range table.Known() {
				if strings.Contains(e, m.Name+"{") {
					byMetric[m.Name] = append(byMetric[m.Name], e)
					titles[m.Name] = append(titles[m.Name], title(p))
				}
			}
		}
	}
	for _, m := range table.Known() {
		es := byMetric[m.Name]
		if len(es) == 0 {
			t.Errorf("no panel for %s", m.Name)
			continue
		}
		rated := slices.ContainsFunc(es, func(e string) bool { return strings.HasPrefix(e, "rate(") })
		if m.Type == schema.Counter && !rated {
			t.Errorf("counter %s is not shown as a rate: %v", m.Name, es)
		}
		for _, title := range titles[m.Name] {
			if strings.HasPrefix(m.Name, "fabric_port_") != strings.HasPrefix(title, "Port ") {
				t.Errorf("%s: panel %q: port metrics want a Port title, others not", m.Name, title)
			}
		}
		for _, e := range es {
			if m.Type == schema.Counter && !strings.Contains(e, "rate(") && !strings.Contains(e, "increase(") {
				t.Errorf("counter %s shown raw: %s", m.Name, e)
			}
			if !strings.Contains(e, `switch_id="$switch_id"`) {
				t.Errorf("%s: not selected by $switch_id: %s", m.Name, e)
			}
		}
	}
}

// TestMissingSchemaColumnFails checks that a dashboard naming a column the
// schema lacks fails to generate instead of querying a metric that does not
// exist.
func TestMissingSchemaColumnFails(t *testing.T) {
	empty := &schema.Table{} // every Lookup fails
	for name, build := range map[string]func(*schema.Table) (dashboard.Dashboard, error){
		"FabricOverview": dashboards.FabricOverview,
		"SwitchDetail":   dashboards.SwitchDetail,
	} {
		if _, err := build(empty); err == nil || !strings.Contains(err.Error(), "Ports_Total") {
			t.Errorf("%s without a schema: err = %v, want one naming the missing columns", name, err)
		}
	}
}

// TestOverviewContent checks that the Fabric overview has what the issue
// asks for, by the metrics its panels query.
func TestOverviewContent(t *testing.T) {
	table := schema.Default()
	d := find(t, generate(t, table), "fabric-overview.json")
	var all []string
	kinds := map[string]bool{}
	for _, p := range panels(d) {
		all = append(all, exprs(p)...)
		kinds[p.Type] = true
	}
	joined := strings.Join(all, "\n")
	for _, col := range []string{"Ports_Total", "Latency_Avg_uSec", "Latency_Max_uSec", "Bandwidth_Util_Pct", "Buffer_Util_Pct",
		"Rx_Errors", "Tx_Discards", "Symbol_Errors", "Link_Down_Count", "Temperature_C", "Power_W"} {
		m, _ := table.Lookup(col)
		if !strings.Contains(joined, m.Name) {
			t.Errorf("no panel shows %s (%s)", m.Name, col)
		}
	}
	for _, kind := range []string{"stat", "bargauge", "heatmap", "timeseries", "table"} {
		if !kinds[kind] {
			t.Errorf("no %s panel", kind)
		}
	}
	if !strings.Contains(joined, "topk(") || !strings.Contains(joined, "$__rate_interval") {
		t.Error("want top-N panels and rates over $__rate_interval")
	}
	hasSwitchVar := false
	for _, v := range d.Templating.List {
		if v.Name == "switch_id" && v.Query != nil && v.Query.String != nil {
			hasSwitchVar = strings.HasPrefix(*v.Query.String, "label_values(")
		}
	}
	if !hasSwitchVar {
		t.Error("no $switch_id label_values variable")
	}
}

// TestMarshalKeepsPromQL checks that the JSON keeps PromQL readable (no
// \u003e for >) and ends with a newline, as gofmt-like tools expect.
func TestMarshalKeepsPromQL(t *testing.T) {
	b, err := dashboards.Marshal(find(t, generate(t, schema.Default()), "fabric-overview.json"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(`\u003e`)) || !bytes.Contains(b, []byte(" > 0")) || !bytes.HasSuffix(b, []byte("}\n")) {
		t.Error("PromQL escaped or no final newline")
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
}
