package dashboards

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/schema"
)

// SwitchDetail is the dashboard of one switch: every metric of the schema
// table over time, one panel each, gauges as they are and counters as
// per-second rates. The panels are derived from the table, so a new schema
// entry gets its panel on the next go generate.
func SwitchDetail(t *schema.Table) (dashboard.Dashboard, error) {
	n := &names{table: t}
	ports, portsUp := n.of("Ports_Total"), n.of("Ports_Up")
	if err := n.err(); err != nil {
		return dashboard.Dashboard{}, err
	}
	one := func(metric string) string {
		return fmt.Sprintf(`%s{%s="$%s"}`, metric, switchLabel, switchVar)
	}

	b := newDashboard("fabric-switch-detail", "Switch detail",
		"Every metric of one switch over time, as the schema table defines them: gauges as they are, counters as per-second rates, per-port counters one line per port. Works on both data sources.").
		WithVariable(switchVariable(false)).
		WithRow(dashboard.NewRowBuilder("Now")).
		WithPanel(statPanel("Reporting", "1 if the switch is in the current snapshot.", "none",
			instant(fmt.Sprintf(`count(%s) or vector(0)`, one(ports)), "")).
			Thresholds(thresholds()).
			Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
				Type: dashboard.MappingTypeValueToText,
				Options: map[string]dashboard.ValueMappingResult{
					"0": {Text: ptr("missing"), Color: ptr("red")},
					"1": {Text: ptr("reporting"), Color: ptr("green")},
				},
			}}})).
		WithPanel(statPanel("Ports up", "Ports whose link is up, of all ports (uncabled ports count as down).", "none",
			instant(fmt.Sprintf(`sum(%s)`, one(portsUp)), "up")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Ports", "Ports of the switch.", "none",
			instant(fmt.Sprintf(`sum(%s)`, one(ports)), "total")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Snapshot age", "Time since the source time of the served snapshot (all switches share it).", "s",
			instant(fmt.Sprintf(`time() - max(%s)`, monitoring.SnapshotTimestamp), "")).
			Thresholds(thresholds(staleSnapshotSeconds, "red")))

	// Switch rows first (gauges, then counters as rates), then the per-port
	// counters, one line per port so that the bad port stands out.
	var gauges, counters, perPort []schema.Metric
	for _, m := range t.Known() {
		switch {
		case strings.HasPrefix(m.Name, portPrefix):
			perPort = append(perPort, m)
		case m.Type == schema.Counter:
			counters = append(counters, m)
		default:
			gauges = append(gauges, m)
		}
	}
	expr := func(m schema.Metric) string {
		if m.Type == schema.Counter {
			return fmt.Sprintf(`rate(%s[$__rate_interval])`, one(m.Name))
		}
		return one(m.Name)
	}
	for _, section := range []struct {
		title   string
		metrics []schema.Metric
		legend  string
	}{
		{"Gauges", gauges, "{{" + switchLabel + "}}"},
		{"Counters (per-second rates)", counters, "{{" + switchLabel + "}}"},
		{"Ports (per-second rates, per port; per-port sources such as UFM Telemetry)", perPort, "port {{" + portLabel + "}}"},
	} {
		if len(section.metrics) == 0 {
			continue
		}
		b = b.WithRow(dashboard.NewRowBuilder(section.title))
		for _, m := range section.metrics {
			b = b.WithPanel(metricPanel(m, query(expr(m), section.legend)))
		}
	}
	return b.Build()
}

// metricPanel is the time series panel of one schema metric, titled and
// unit-ed from its name, described by its help text.
func metricPanel(m schema.Metric, target cogQuery) *timeseriesBuilder {
	desc := m.Help
	if m.Type == schema.Counter {
		desc += " Shown as a per-second rate."
	}
	return timeseriesPanel(metricTitle(m), desc, metricUnit(m), target).
		Span(8).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(false))
}

// Name prefixes of the two subsystems' data metrics.
const (
	switchPrefix = schema.Namespace + "_" + schema.SwitchSubsystem + "_"
	portPrefix   = schema.Namespace + "_" + schema.PortSubsystem + "_"
)

// portLabel is the label that tells the ports of a switch apart on per-port
// metrics.
const portLabel = "port"

// metricTitle turns fabric_switch_receive_errors_total into "Receive errors
// per second", fabric_port_symbol_errors_total into "Port symbol errors per
// second" and fabric_switch_temperature_celsius into "Temperature celsius".
func metricTitle(m schema.Metric) string {
	s := m.Name
	switch {
	case strings.HasPrefix(s, switchPrefix):
		s = strings.TrimPrefix(s, switchPrefix)
	case strings.HasPrefix(s, portPrefix):
		s = "port " + strings.TrimPrefix(s, portPrefix)
	default:
		s = strings.TrimPrefix(s, schema.Namespace+"_")
	}
	s = strings.TrimSuffix(s, "_total")
	s = strings.ReplaceAll(s, "_", " ")
	if m.Type == schema.Counter {
		s += " per second"
	}
	if s == "" {
		return m.Name
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// metricUnit picks the Grafana unit from the metric's base-unit suffix.
func metricUnit(m schema.Metric) string {
	name := m.Name
	if m.Type == schema.Counter {
		switch {
		case strings.HasSuffix(name, "_bytes_total"):
			return "Bps"
		case strings.HasSuffix(name, "_packets_total"):
			return "pps"
		case strings.HasSuffix(name, "_seconds_total"):
			return "percentunit" // seconds per second
		default:
			return "cps"
		}
	}
	for suffix, unit := range map[string]string{
		"_seconds": "s",
		"_ratio":   "percentunit",
		"_celsius": "celsius",
		"_watts":   "watt",
		"_bytes":   "bytes",
	} {
		if strings.HasSuffix(name, suffix) {
			return unit
		}
	}
	return "none"
}
