package dashboards

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/schema"
)

const instanceVar = "instance"

// AggregatorHealth is the dashboard of the aggregator itself: ingestion
// cycle latency and failures, source health, snapshot age and size, HTTP
// latency and load, memory and GC. It reads the self-metrics and the
// recording rules of prometheus/recording.yml, so it needs the Prometheus
// data source.
func AggregatorHealth(*schema.Table) (dashboard.Dashboard, error) {
	job := fmt.Sprintf(`job="%s", instance=~"$%s"`, monitoring.Job, instanceVar)
	s := func(metric string) string { return fmt.Sprintf("%s{%s}", metric, job) }
	rate := func(metric string) string {
		return fmt.Sprintf("rate(%s[$__rate_interval])", s(metric))
	}
	instanceQuery := fmt.Sprintf(`label_values(up{job="%s"}, instance)`, monitoring.Job)

	b := newDashboard("fabric-aggregator-health", "Aggregator health",
		"The telemetry aggregator itself: ingestion cycles (latency, failures by reason), source health, snapshot age and size, HTTP latency and load, memory and GC. Needs the Prometheus data source (self-metrics and recording rules).").
		WithVariable(dashboard.NewQueryVariableBuilder(instanceVar).
			Label("Instance").
			Datasource(datasource).
			Query(dashboard.StringOrMap{String: ptr(instanceQuery)}).
			Definition(instanceQuery).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortNaturalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*").
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{ArrayOfString: []string{"All"}},
				Value: dashboard.StringOrArrayOfString{ArrayOfString: []string{"$__all"}},
			})).
		WithRow(dashboard.NewRowBuilder("Status")).
		WithPanel(statPanel("Aggregator up", "Whether Prometheus can scrape the aggregator (alert FabricAggregatorDown).", "none",
			instant(fmt.Sprintf("min(%s)", s("up")), "")).
			Thresholds(thresholds()).
			Mappings(upMappings())).
		WithPanel(statPanel("Source up", "Whether the last poll of the source succeeded. Data stays served from the last good snapshot either way.", "none",
			instant(fmt.Sprintf("min(%s)", s(monitoring.SourceUp)), "")).
			Thresholds(thresholds()).
			Mappings(upMappings())).
		WithPanel(statPanel("Snapshot age", "Time since the source time of the served snapshot (alert FabricTelemetryStale above 30s).", "s",
			instant(fmt.Sprintf("time() - min(%s)", s(monitoring.SnapshotTimestamp)), "")).
			Thresholds(thresholds(staleSnapshotSeconds, "red"))).
		WithPanel(statPanel("Last successful ingest", "Time since the last ingestion cycle that succeeded.", "s",
			instant(fmt.Sprintf("time() - min(%s)", s(monitoring.IngestLastSuccess)), "")).
			Thresholds(thresholds(staleSnapshotSeconds, "red"))).
		WithPanel(statPanel("Switches", "Switches in the served snapshot.", "none",
			instant(fmt.Sprintf("max(%s)", s(monitoring.SnapshotSwitches)), "")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Series", "Data series in the served snapshot.", "short",
			instant(fmt.Sprintf("max(%s)", s(monitoring.SnapshotSeries)), "")).
			Thresholds(thresholds())).
		WithRow(dashboard.NewRowBuilder("Ingestion")).
		WithPanel(timeseriesPanel("Ingest cycle duration", "Median and 99th percentile of whole ingestion cycles (fetch, parse, swap) over 5m windows.", "s",
			query(fmt.Sprintf(`%s{%s, quantile=~"0.5|0.99"}`, monitoring.RecIngestQuantile, job), "{{instance}} p{{quantile}}"))).
		WithPanel(timeseriesPanel("Ingest phase duration (p99)", "99th percentile of each phase of the ingestion cycle over 5m windows.", "s",
			query(fmt.Sprintf(`%s{%s, quantile="0.99"}`, monitoring.RecIngestPhaseQuantile, job), "{{instance}} {{phase}}"))).
		WithPanel(timeseriesPanel("Ingest cycles", "Ingestion cycles per second by result.", "ops",
			query(fmt.Sprintf("sum by (result) (%s)", rate(monitoring.IngestTotal)), "{{result}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))).
		WithPanel(timeseriesPanel("Ingest failures by reason", "Rejected ingestion cycles per second, by reason (alert FabricIngestionFailing). A rejected poll keeps the last good snapshot.", "ops",
			query(fmt.Sprintf(`sum by (reason) (%s{%s}) > 0`, monitoring.RecIngestFailureRate, job), "{{reason}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))).
		WithPanel(timeseriesPanel("Ingest failure ratio", "Share of ingestion cycles that failed over 5m windows.", "percentunit",
			query(fmt.Sprintf(`%s{%s}`, monitoring.RecIngestFailureRatio, job), "{{instance}}")).
			Max(1)).
		WithPanel(timeseriesPanel("Snapshot age", "Time since the source time of the served snapshot; the saw-tooth peaks at the poll interval while polls succeed.", "s",
			query(fmt.Sprintf("time() - %s", s(monitoring.SnapshotTimestamp)), "{{instance}}")).
			Thresholds(thresholds(staleSnapshotSeconds, "red")).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))).
		WithPanel(timeseriesPanel("Switches and series in the snapshot", "Size of the served snapshot.", "short",
			query(s(monitoring.SnapshotSwitches), "{{instance}} switches"),
			query(s(monitoring.SnapshotSeries), "{{instance}} series")).
			OverrideByRegexp(".*series", []dashboard.DynamicConfigValue{{Id: "custom.axisPlacement", Value: "right"}})).
		WithPanel(timeseriesPanel("Source up", "1 while polls of the source succeed.", "none",
			query(s(monitoring.SourceUp), "{{instance}}")).
			Min(0).Max(1)).
		WithRow(dashboard.NewRowBuilder("HTTP")).
		WithPanel(timeseriesPanel("Request latency (p99) per route", "99th percentile of the time to serve a request, per handler, over 5m windows.", "s",
			query(fmt.Sprintf(`max by (handler) (%s{%s, quantile="0.99"})`, monitoring.RecHTTPQuantile, job), "{{handler}}"))).
		WithPanel(timeseriesPanel("Requests per route", "Query load: requests per second by handler (REST, /metrics, PromQL API).", "reqps",
			query(fmt.Sprintf("sum by (handler) (%s{%s})", monitoring.RecHTTPRequestRate, job), "{{handler}}"))).
		WithPanel(timeseriesPanel("Errors per route", "Requests per second answered with a 4xx or 5xx status, by handler and code.", "reqps",
			query(fmt.Sprintf(`sum by (handler, code) (rate(%s{%s, code=~"4..|5.."}[$__rate_interval])) > 0`, monitoring.HTTPRequests, job), "{{handler}} {{code}}"))).
		WithPanel(timeseriesPanel("Request latency (p50) per route", "Median time to serve a request, per handler, over 5m windows.", "s",
			query(fmt.Sprintf(`max by (handler) (%s{%s, quantile="0.5"})`, monitoring.RecHTTPQuantile, job), "{{handler}}"))).
		WithRow(dashboard.NewRowBuilder("Runtime")).
		WithPanel(timeseriesPanel("Memory", "Resident memory of the process and the Go heap in use.", "bytes",
			query(s(monitoring.ProcessResidentBytes), "{{instance}} resident"),
			query(s(monitoring.GoHeapInuseBytes), "{{instance}} heap in use"),
			query(s(monitoring.GoHeapAllocBytes), "{{instance}} heap allocated"))).
		WithPanel(timeseriesPanel("GC pauses", "Longest GC stop-the-world pause and the mean pause per collection.", "s",
			query(fmt.Sprintf(`%s{%s, quantile="1"}`, monitoring.GoGCDuration, job), "{{instance}} max"),
			query(fmt.Sprintf("%s / %s", rate(monitoring.GoGCDuration+"_sum"), rate(monitoring.GoGCDuration+"_count")), "{{instance}} mean"))).
		WithPanel(timeseriesPanel("GC rate", "Garbage collections per second.", "ops",
			query(rate(monitoring.GoGCDuration+"_count"), "{{instance}}"))).
		WithPanel(timeseriesPanel("CPU", "CPU seconds used per second.", "percentunit",
			query(rate(monitoring.ProcessCPUSeconds), "{{instance}}"))).
		WithPanel(timeseriesPanel("Goroutines and open files", "Goroutines and open file descriptors; steady growth is a leak.", "short",
			query(s(monitoring.GoGoroutines), "{{instance}} goroutines"),
			query(s(monitoring.ProcessOpenFDs), "{{instance}} open fds"))).
		WithPanel(tablePanel("Build", "Version of each aggregator instance.",
			tableQuery(fmt.Sprintf("max by (instance, version, revision, branch, goversion) (%s)", s(monitoring.BuildInfo)))).
			Span(12))
	return b.Build()
}

func upMappings() []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr("down"), Color: ptr("red")},
			"1": {Text: ptr("up"), Color: ptr("green")},
		},
	}}}
}
