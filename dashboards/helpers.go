package dashboards

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/fabrictelemetry/aggregator/schema"
)

// Names of the dashboard variables.
const (
	datasourceVar = "datasource"
	switchVar     = "switch_id"
)

// defaultDatasource is the name of the provisioned Prometheus data source
// (grafana/provisioning/datasources/datasources.yml), selected until the
// user picks another.
const defaultDatasource = "Prometheus"

// switchLabel is the label that identifies a switch on every data metric.
const switchLabel = "switch_id"

// tags are shared by every dashboard, so Grafana lists them together and the
// dashboards link to each other.
var tags = []string{"fabric-telemetry"}

func ptr[T any](v T) *T { return &v }

// Short names for the SDK types the helpers pass around.
type (
	cogQuery          = *prometheus.DataqueryBuilder
	timeseriesBuilder = timeseries.PanelBuilder
)

// datasource is what every panel and query variable reads from: whatever
// the $datasource variable selects.
var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${" + datasourceVar + "}")}

// newDashboard starts a dashboard with the settings every dashboard shares:
// the $datasource variable, browser time, a refresh that matches the 10s
// poll interval, shared crosshair and links to the other dashboards.
func newDashboard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags(tags).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Link(dashboard.NewDashboardLinkBuilder("Fabric dashboards").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags(tags).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder(datasourceVar).
			Label("Data source").
			Type("prometheus").
			Current(option(defaultDatasource)))
}

func option(v string) dashboard.VariableOption {
	return dashboard.VariableOption{
		Text:  dashboard.StringOrArrayOfString{String: ptr(v)},
		Value: dashboard.StringOrArrayOfString{String: ptr(v)},
	}
}

// switchVariable is $switch_id: every switch_id value the data source
// knows, whichever subsystem (switch matrix or per-port rows) it reports.
func switchVariable(multi bool) *dashboard.QueryVariableBuilder {
	return queryVariable(switchVar, "Switch", fmt.Sprintf("label_values(%s)", switchLabel), multi)
}

// queryVariable is a variable whose values a query lists, refreshed with
// the time range. multi lets the user pick several or All (then the value
// is a regex, so queries match with =~).
func queryVariable(name, label, query string, multi bool) *dashboard.QueryVariableBuilder {
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: ptr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortNaturalAsc)
	if multi {
		v = v.Multi(true).IncludeAll(true).AllValue(".*").Current(dashboard.VariableOption{
			Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
			Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
		})
	}
	return v
}

// names looks data metrics up in the schema table by source column, so that
// no data metric name is typed by hand. A column missing from the table is
// remembered and reported by err.
type names struct {
	table   *schema.Table
	missing []string
}

func (n *names) of(column string) string {
	m, ok := n.table.Lookup(column)
	if !ok {
		n.missing = append(n.missing, column)
		return "missing_" + column
	}
	return m.Name
}

func (n *names) err() error {
	if len(n.missing) > 0 {
		return fmt.Errorf("schema has no column %s", strings.Join(n.missing, ", "))
	}
	return nil
}

// sel is a selector of metric for the switches picked in $switch_id.
func sel(metric string) string {
	return fmt.Sprintf(`%s{%s=~"$%s"}`, metric, switchLabel, switchVar)
}

// query is a range query, the default for time series panels.
func query(expr, legend string) cogQuery {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource).
		Expr(expr).
		LegendFormat(legend).
		Range()
}

// instant is an instant query, for stats, bar gauges and tables.
func instant(expr, legend string) cogQuery {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource).
		Expr(expr).
		LegendFormat(legend).
		Instant()
}

// tableQuery is an instant query whose result a table panel shows as rows.
func tableQuery(expr string) cogQuery {
	return prometheus.NewDataqueryBuilder().
		Datasource(datasource).
		Expr(expr).
		Format(prometheus.PromQueryFormatTable).
		Instant()
}

// refID names the i-th query of a panel the way Grafana does: A, B, C...
func refID(i int) string { return string(rune('A' + i)) }

// thresholds builds absolute thresholds: green below the first step, then
// each step's color from its value on.
func thresholds(steps ...any) *dashboard.ThresholdsConfigBuilder {
	ts := []dashboard.Threshold{{Color: "green"}}
	for i := 0; i+1 < len(steps); i += 2 {
		ts = append(ts, dashboard.Threshold{Value: ptr(steps[i].(float64)), Color: steps[i+1].(string)})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(ts)
}

func timeseriesPanel(title, description, unit string, targets ...cogQuery) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource).
		Unit(unit).
		Height(8).
		Span(12).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementRight).
			ShowLegend(true).
			SortBy("Max").
			SortDesc(true).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
	for i, t := range targets {
		p = p.WithTarget(t.RefId(refID(i)))
	}
	return p
}

func statPanel(title, description, unit string, target cogQuery) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource).
		Unit(unit).
		Height(4).
		Span(4).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeBackground).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(target.RefId(refID(0)))
}

// barGaugePanel compares switches: one bar per series of an instant query.
func barGaugePanel(title, description, unit string, target cogQuery) *bargauge.PanelBuilder {
	return bargauge.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource).
		Unit(unit).
		Height(10).
		Span(8).
		Min(0).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		Orientation(common.VizOrientationHorizontal).
		ShowUnfilled(true).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		WithTarget(target.RefId(refID(0)))
}

func tablePanel(title, description string, target cogQuery) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title(title).
		Description(description).
		Datasource(datasource).
		Height(8).
		Span(8).
		NoValue("none").
		// The SDK's default footer has a null reducer, which Grafana's
		// schema (and the SDK's strict decoder) reject.
		Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).
		// Only the switch: the time and value columns say nothing here.
		WithTransformation(dashboard.DataTransformerConfig{
			Id: "organize",
			Options: map[string]any{
				"excludeByName": map[string]bool{"Time": true, "Value": true},
			},
		}).
		WithTarget(target.RefId(refID(0)))
}
