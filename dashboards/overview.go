package dashboards

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/schema"
)

// Thresholds shared with the alert rules in prometheus/alerts.yml; the
// dashboards colour a value the way the alerts judge it.
const (
	latencyWarnSeconds   = 10e-6
	bandwidthWarnRatio   = 0.9
	temperatureWarnC     = 80.0
	staleSnapshotSeconds = 30.0
)

// topN is how many switches the "top" panels show.
const topN = 10

// FabricOverview is the dashboard of the whole fabric: how many switches
// report, which are missing, the worst latencies, utilization, errors, link
// flaps, temperature and power across switches.
func FabricOverview(t *schema.Table) (dashboard.Dashboard, error) {
	n := &names{table: t}
	var (
		ports       = n.of("Ports_Total")
		portsUp     = n.of("Ports_Up")
		latAvg      = n.of("Latency_Avg_uSec")
		latMax      = n.of("Latency_Max_uSec")
		bandwidth   = n.of("Bandwidth_Util_Pct")
		buffer      = n.of("Buffer_Util_Pct")
		rxBytes     = n.of("Rx_Bytes")
		txBytes     = n.of("Tx_Bytes")
		rxErrors    = n.of("Rx_Errors")
		txDiscards  = n.of("Tx_Discards")
		symbolErrs  = n.of("Symbol_Errors")
		linkDowns   = n.of("Link_Down_Count")
		temperature = n.of("Temperature_C")
		power       = n.of("Power_W")
		// The same counters from a per-port source (UFM Telemetry).
		portRxBytes    = n.of("PortRcvDataExtended")
		portTxBytes    = n.of("PortXmitDataExtended")
		portRxErrors   = n.of("PortRcvErrorsExtended")
		portTxDiscards = n.of("PortXmitDiscardsExtended")
		portSymbolErrs = n.of("SymbolErrorCounterExtended")
		portLinkDowns  = n.of("LinkDownedCounterExtended")
	)
	// A switch "reports" when its rows are in the current snapshot: a switch
	// matrix row has ports, a per-port row a link-down counter. It is
	// "expected" when it reported at any time in the last hour. Grouping by
	// switch_id folds duplicates (two Prometheus replicas, two aggregators).
	present := fmt.Sprintf(`group by (%s) (%s or %s)`, switchLabel, sel(ports), sel(portLinkDowns))
	reporting := fmt.Sprintf(`count(%s)`, present)
	seen := fmt.Sprintf(`group by (%[1]s) (max_over_time(%[2]s[1h]) or max_over_time(%[3]s[1h]))`, switchLabel, sel(ports), sel(portLinkDowns))
	missing := fmt.Sprintf(`%s unless %s`, seen, present)
	// perSwitchRate sums a counter's rate per switch, from switch rows or,
	// for a per-port source, over the switch's ports.
	perSwitchRate := func(metric, portMetric string) string {
		return fmt.Sprintf(`sum by (%[1]s) (rate(%[2]s[$__rate_interval])) or sum by (%[1]s) (rate(%[3]s[$__rate_interval]))`,
			switchLabel, sel(metric), sel(portMetric))
	}
	fabricRate := func(metric, portMetric string) string {
		return fmt.Sprintf(`(sum(rate(%s[$__rate_interval])) or sum(rate(%s[$__rate_interval]))) * 8`, sel(metric), sel(portMetric))
	}
	perSwitch := func(metric string) string {
		return fmt.Sprintf(`max by (%s) (%s)`, switchLabel, sel(metric))
	}
	legend := "{{" + switchLabel + "}}"

	b := newDashboard("fabric-overview", "Fabric overview",
		"Every switch of the fabric at a glance: which report, the worst latencies, utilization, errors, link flaps, temperature and power. Works on both data sources (Prometheus, or the aggregator's own query API). Counts, errors, flaps and throughput also cover per-port sources (UFM Telemetry); latency, utilization, temperature and power come from the switch matrix only.").
		WithVariable(switchVariable(true)).
		WithRow(dashboard.NewRowBuilder("Switches")).
		WithPanel(statPanel("Switches reporting", "Switches in the current snapshot.", "none",
			instant(reporting, "")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Switches expected", "Switches that reported at some time in the last hour.", "none",
			instant(fmt.Sprintf(`count(%s)`, seen), "")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Switches missing", "Switches seen in the last hour that are not in the current snapshot (alert FabricSwitchMissing).", "none",
			instant(fmt.Sprintf(`count(%s) or vector(0)`, missing), "")).
			Thresholds(thresholds(1.0, "red"))).
		WithPanel(statPanel("Snapshot age", "Time since the source time of the served snapshot. Above 3 poll intervals the data is stale (alert FabricTelemetryStale).", "s",
			instant(fmt.Sprintf(`time() - max(%s)`, monitoring.SnapshotTimestamp), "")).
			Thresholds(thresholds(staleSnapshotSeconds, "red"))).
		WithPanel(statPanel("Ports up", "Ports whose link is up, of all ports of the selected switches (uncabled ports count as down).", "percentunit",
			instant(fmt.Sprintf(`sum(%s) / sum(%s)`, sel(portsUp), sel(ports)), "")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Fabric power", "Power drawn by the selected switches.", "watt",
			instant(fmt.Sprintf(`sum(%s)`, sel(power)), "")).
			Thresholds(thresholds())).
		WithPanel(tablePanel("Missing switches", "Switches seen in the last hour that are absent from the current snapshot.",
			tableQuery(missing))).
		WithPanel(timeseriesPanel("Switches reporting over time", "Switches in each snapshot, against those seen in the last hour.", "none",
			query(reporting, "reporting"),
			query(fmt.Sprintf(`count(%s)`, seen), "seen in the last hour")).
			Span(16)).
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(barGaugePanel(fmt.Sprintf("Top %d average latency", topN), "Switches with the highest average port-to-port latency now.", "s",
			instant(fmt.Sprintf(`topk(%d, %s)`, topN, perSwitch(latAvg)), legend)).
			Thresholds(thresholds(latencyWarnSeconds, "red"))).
		WithPanel(timeseriesPanel(fmt.Sprintf("Top %d maximum latency", topN), "Maximum latency of the switches that are worst over the range.", "s",
			query(fmt.Sprintf(`%s and on (%s) topk(%d, max by (%s) (max_over_time(%s[$__range])))`, perSwitch(latMax), switchLabel, topN, switchLabel, sel(latMax)), legend)).
			Span(16)).
		WithRow(dashboard.NewRowBuilder("Utilization")).
		WithPanel(barGaugePanel("Bandwidth utilization", "Bandwidth utilization of every selected switch now, highest first.", "percentunit",
			instant(fmt.Sprintf(`sort_desc(%s)`, perSwitch(bandwidth)), legend)).
			Max(1).
			Thresholds(thresholds(0.7, "yellow", bandwidthWarnRatio, "red"))).
		WithPanel(barGaugePanel("Buffer utilization", "Buffer utilization of every selected switch now, highest first.", "percentunit",
			instant(fmt.Sprintf(`sort_desc(%s)`, perSwitch(buffer)), legend)).
			Max(1).
			Thresholds(thresholds(0.7, "yellow", 0.9, "red"))).
		WithPanel(heatmap.NewPanelBuilder().
			Title("Bandwidth utilization distribution").
			Description("How many switches run at each bandwidth utilization, over time: a band moving up is the fabric filling up, a lone cell at the top a hot spot.").
			Datasource(datasource).
			Height(10).
			Span(8).
			Calculate(true).
			Color(heatmap.NewHeatmapColorOptionsBuilder().
				Mode(heatmap.HeatmapColorModeScheme).
				Scheme("Oranges").
				Scale(heatmap.HeatmapColorScaleExponential).
				Exponent(0.5).
				Steps(64)).
			YAxis(heatmap.NewYAxisConfigBuilder().Unit("percentunit").Min(0).Max(1)).
			WithTarget(query(perSwitch(bandwidth), legend).RefId(refID(0)))).
		WithPanel(timeseriesPanel("Fabric throughput", "Bits per second received and transmitted by the selected switches together.", "bps",
			query(fabricRate(rxBytes, portRxBytes), "receive"),
			query(fabricRate(txBytes, portTxBytes), "transmit")).
			Span(24)).
		WithRow(dashboard.NewRowBuilder("Errors and link flaps")).
		WithPanel(timeseriesPanel("Receive errors", "Receive errors per second, per switch (alert FabricReceiveErrorsRising).", "cps",
			query(perSwitchRate(rxErrors, portRxErrors), legend))).
		WithPanel(timeseriesPanel("Transmit discards", "Packets discarded for lack of buffer per second, per switch.", "cps",
			query(perSwitchRate(txDiscards, portTxDiscards), legend))).
		WithPanel(timeseriesPanel("Symbol errors", "Physical-layer symbol errors per second, per switch (alert FabricSymbolErrorsRising).", "cps",
			query(perSwitchRate(symbolErrs, portSymbolErrs), legend))).
		WithPanel(barGaugePanel("Link flaps", "Link-down events per switch over the dashboard's time range (alert FabricLinkFlapping).", "none",
			instant(fmt.Sprintf(`sort_desc((sum by (%[1]s) (increase(%[2]s[$__range])) or sum by (%[1]s) (increase(%[3]s[$__range]))) > 0)`, switchLabel, sel(linkDowns), sel(portLinkDowns)), legend)).
			Span(12).
			Height(8).
			Thresholds(thresholds(1.0, "yellow", 4.0, "red"))).
		WithRow(dashboard.NewRowBuilder("Environment")).
		WithPanel(timeseriesPanel("Temperature", "Temperature per switch (alert FabricSwitchOverheating).", "celsius",
			query(perSwitch(temperature), legend)).
			Thresholds(thresholds(temperatureWarnC, "red")).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))).
		WithPanel(timeseriesPanel("Power", "Power draw per switch.", "watt",
			query(perSwitch(power), legend)))
	if err := n.err(); err != nil {
		return dashboard.Dashboard{}, err
	}
	return b.Build()
}
