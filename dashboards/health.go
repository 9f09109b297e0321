package dashboards

//lint:file-ignore SA1019 Grafana provisions classic (v1) dashboard JSON from files; the SDK's dashboardv2 needs Grafana's new dashboard API. See package doc.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/fabrictelemetry/aggregator/monitoring"
	"github.com/fabrictelemetry/aggregator/schema"
)

const (
	instanceVar = "instance"
	sourceVar   = "source"
)

// AggregatorHealth is the dashboard of the aggregator itself: ingestion
// cycle latency and failures and health per source, snapshot age and size,
// HTTP latency and load, memory and GC. It reads the self-metrics, which
// the aggregator's query API has too, and the recording rules of
// prometheus/recording.yml, which only the Prometheus data source has. The
// ingestion panels show one line per source ($source picks them); the
// snapshot panels describe the whole view the aggregator serves.
func AggregatorHealth(*schema.Table) (dashboard.Dashboard, error) {
	job := fmt.Sprintf(`job="%s", instance=~"$%s"`, monitoring.Job, instanceVar)
	s := func(metric string) string { return fmt.Sprintf("%s{%s}", metric, job) }
	rate := func(metric string) string {
		return fmt.Sprintf("rate(%s[$__rate_interval])", s(metric))
	}
	// Ingestion self-metrics and their recording rules, per source.
	src := fmt.Sprintf(`%s, %s=~"$%s"`, job, monitoring.SourceLabel, sourceVar)
	ss := func(metric string) string { return fmt.Sprintf("%s{%s}", metric, src) }
	instanceQuery := fmt.Sprintf(`label_values(up{job="%s"}, instance)`, monitoring.Job)
	sourceQuery := fmt.Sprintf(`label_values(%s, %s)`, s(monitoring.SourceUp), monitoring.SourceLabel)

	b := newDashboard("fabric-aggregator-health", "Aggregator health",
		"The telemetry aggregator itself: ingestion cycles per source (latency, failures by reason), source health, snapshot age and size, HTTP latency and load, memory and GC. Works on both data sources, but the panels of recording rules (ingest and HTTP quantiles, failure rates and ratio) need Prometheus.").
		WithVariable(queryVariable(instanceVar, "Instance", instanceQuery, true)).
		WithVariable(queryVariable(sourceVar, "Source", sourceQuery, true).
			Description("Sources of the aggregator (its configuration file, or default for the flags' one source).")).
		WithRow(dashboard.NewRowBuilder("Status")).
		WithPanel(statPanel("Aggregator up", "Whether Prometheus can scrape the aggregator (alert FabricAggregatorDown).", "none",
			instant(fmt.Sprintf("min(%s)", s("up")), "")).
			Thresholds(thresholds()).
			Mappings(upMappings())).
		WithPanel(statPanel("Source up", "Per source: whether its last poll succeeded (alert FabricSourceDown after 2m of failures). Its data stays served from its last good snapshot either way.", "none",
			instant(fmt.Sprintf("min by (%s) (%s)", monitoring.SourceLabel, ss(monitoring.SourceUp)), "{{source}}")).
			Thresholds(thresholds()).
			Mappings(upMappings())).
		WithPanel(statPanel("Snapshot age", "Time since the source time of the newest part of the served view (alert FabricTelemetryStale above 30s).", "s",
			instant(fmt.Sprintf("time() - min(%s)", s(monitoring.SnapshotTimestamp)), "")).
			Thresholds(thresholds(staleSnapshotSeconds, "red"))).
		WithPanel(statPanel("Last successful ingest", "Per source: time since its last ingestion cycle that succeeded.", "s",
			instant(fmt.Sprintf("time() - min by (%s) (%s)", monitoring.SourceLabel, ss(monitoring.IngestLastSuccess)), "{{source}}")).
			Thresholds(thresholds(staleSnapshotSeconds, "red"))).
		WithPanel(statPanel("Switches", "Distinct switches in the served view, all sources and parts together.", "none",
			instant(fmt.Sprintf("max(%s)", s(monitoring.SnapshotSwitches)), "")).
			Thresholds(thresholds())).
		WithPanel(statPanel("Series", "Data series in the served view, all sources and parts together.", "short",
			instant(fmt.Sprintf("max(%s)", s(monitoring.SnapshotSeries)), "")).
			Thresholds(thresholds())).
		WithRow(dashboard.NewRowBuilder("Ingestion")).
		WithPanel(timeseriesPanel("Ingest cycle duration", "Median and 99th percentile of whole ingestion cycles (fetch, parse, swap) of each source over 5m windows.", "s",
			query(fmt.Sprintf(`%s{%s, quantile=~"0.5|0.99"}`, monitoring.RecIngestQuantile, src), "{{instance}} {{source}} p{{quantile}}"))).
		WithPanel(timeseriesPanel("Ingest phase duration (p99)", "99th percentile of each phase of the ingestion cycles of each source over 5m windows.", "s",
			query(fmt.Sprintf(`%s{%s, quantile="0.99"}`, monitoring.RecIngestPhaseQuantile, src), "{{instance}} {{source}} {{phase}}"))).
		WithPanel(timeseriesPanel("Ingest cycles", "Ingestion cycles per second by source and result.", "ops",
			query(fmt.Sprintf("sum by (%s, result) (rate(%s[$__rate_interval]))", monitoring.SourceLabel, ss(monitoring.IngestTotal)), "{{source}} {{result}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))).
		WithPanel(timeseriesPanel("Ingest failures by reason", "Rejected ingestion cycles per second, by source and reason (alerts FabricIngestionFailing, FabricSourceDown). A rejected poll keeps the source's last good snapshot.", "ops",
			query(fmt.Sprintf(`sum by (%s, reason) (%s{%s}) > 0`, monitoring.SourceLabel, monitoring.RecIngestFailureRate, src), "{{source}} {{reason}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))).
		WithPanel(timeseriesPanel("Ingest failure ratio", "Share of each source's ingestion cycles that failed over 5m windows.", "percentunit",
			query(fmt.Sprintf(`%s{%s}`, monitoring.RecIngestFailureRatio, src), "{{instance}} {{source}}")).
			Max(1)).
		WithPanel(timeseriesPanel("Snapshot age", "Time since the source time of the newest part of the served view; the saw-tooth peaks at the poll interval while polls succeed.", "s",
			query(fmt.Sprintf("time() - %s", s(monitoring.SnapshotTimestamp)), "{{instance}}")).
			Thresholds(thresholds(staleSnapshotSeconds, "red")).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))).
		WithPanel(timeseriesPanel("Switches and series in the snapshot", "Size of the served view, all sources and parts together.", "short",
			query(s(monitoring.SnapshotSwitches), "{{instance}} switches"),
			query(s(monitoring.SnapshotSeries), "{{instance}} series")).
			OverrideByRegexp(".*series", []dashboard.DynamicConfigValue{{Id: "custom.axisPlacement", Value: "right"}})).
		WithPanel(timeseriesPanel("Source up", "1 while polls of the source succeed, per source.", "none",
			query(ss(monitoring.SourceUp), "{{instance}} {{source}}")).
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
			// Prometheus 3 writes the quantile of a scraped summary as a
			// float: 1.0, never 1.
			query(fmt.Sprintf(`%s{%s, quantile="1.0"}`, monitoring.GoGCDuration, job), "{{instance}} max"),
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
