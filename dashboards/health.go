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
// HTTP latency and load, memory and GC, the poll log on Kafka and partitioned
// replicas. It reads the self-metrics, which the aggregator's query API has
// too, and the recording rules of
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
		"The telemetry aggregator itself: ingestion cycles per source (latency, failures by reason), source health, snapshot age and size, HTTP latency and load, memory and GC, the poll log on Kafka (publishers and replicas) and partitioned replicas (partitions, group, fan-out to peers). Works on both data sources, but the panels of recording rules (ingest, HTTP and publish quantiles, failure rates and ratio) need Prometheus.").
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
	b = pollLogRow(b, s, rate)
	b = partitionedRow(b, s, rate)
	return b.Build()
}

// pollLogLaggingSeconds is FabricPollLogLagging's threshold.
const pollLogLaggingSeconds = 60.0

// pollLogRow adds the poll log's panels (docs/poll-log.md): publishers are
// aggregators with --kafka.publish, replicas aggregators with a kafka://
// source; an aggregator with neither shows nothing here. Every panel has a
// line per instance and source, whatever $source selects: a replica's
// source is its own name for the topic it follows.
func pollLogRow(b *dashboard.DashboardBuilder, s, rate func(string) string) *dashboard.DashboardBuilder {
	bySource := func(expr string) string { return fmt.Sprintf("sum by (instance, source) (%s)", expr) }
	return b.WithRow(dashboard.NewRowBuilder("Poll log (Kafka)")).
		WithPanel(timeseriesPanel("Behind the poll log", "Replicas: 0 while every partition is read to its end, else the age of the newest poll applied (alert FabricPollLogLagging above 60s for 5m). A replica replaying its history at start is behind until it is ready.", "s",
			query(s(monitoring.PollLogBehind), "{{instance}} {{source}}")).
			Thresholds(thresholds(pollLogLaggingSeconds, "red")).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeLine))).
		WithPanel(timeseriesPanel("Consumer lag by partition", "Replicas: records between the reader's position and each partition's last stable offset. One partition lagging points at its leader broker; all of them at the replica or Kafka as a whole.", "short",
			query(fmt.Sprintf("sum by (instance, source, partition) (%s)", s(monitoring.PollLogConsumerLag)), "{{instance}} {{source}} p{{partition}}"))).
		WithPanel(timeseriesPanel("Records written and read", "Records per second committed by publishers (markers included) and read by replicas.", "cps",
			query(bySource(rate(monitoring.PollLogRecordsWritten)), "{{instance}} {{source}} written"),
			query(bySource(rate(monitoring.PollLogRecordsRead)), "{{instance}} {{source}} read"))).
		WithPanel(timeseriesPanel("Bytes written and read", "Record bytes per second: written by publishers before Kafka's compression, read by replicas after decompression.", "Bps",
			query(bySource(rate(monitoring.PollLogBytesWritten)), "{{instance}} {{source}} written"),
			query(bySource(rate(monitoring.PollLogBytesRead)), "{{instance}} {{source}} read"))).
		WithPanel(timeseriesPanel("Publish latency", "Median and 99th percentile of the time from a poll's acceptance to its transaction's commit, retries included, over 5m windows (alert FabricPollLogPublishFailing when nothing commits).", "s",
			query(fmt.Sprintf(`%s{job="%s", instance=~"$%s", quantile=~"0.5|0.99"}`, monitoring.RecPublishQuantile, monitoring.Job, instanceVar), "{{instance}} {{source}} p{{quantile}}"))).
		WithPanel(timeseriesPanel("Aborted transactions and dropped polls", "Publishers: poll transactions aborted per second (each poll is retried), and polls dropped per second by reason (alert FabricPollLogPollsDropped): buffer_full when Kafka is unreachable longer than the buffer, unencodable, stale after a takeover.", "cps",
			query(bySource(rate(monitoring.PollLogTransactionsAborted))+" > 0", "{{instance}} {{source}} aborted"),
			query(fmt.Sprintf("sum by (instance, source, reason) (%s) > 0", rate(monitoring.PollLogPollsDropped)), "{{instance}} {{source}} dropped {{reason}}"))).
		WithPanel(timeseriesPanel("Active publisher and buffered polls", "Publishers: 1 while the instance holds the source's lease and writes its polls, 0 while it stands by (alert FabricPollLogNoActivePublisher when no instance holds it); polls waiting to be written, right axis.", "short",
			query(s(monitoring.PollLogPublisherActive), "{{instance}} {{source}} active"),
			query(s(monitoring.PollLogBufferedPolls), "{{instance}} {{source}} buffered")).
			OverrideByRegexp(".*buffered", []dashboard.DynamicConfigValue{{Id: "custom.axisPlacement", Value: "right"}})).
		WithPanel(timeseriesPanel("Polls applied and rejected", "Replicas: complete polls applied per second, and records or polls rejected per second by reason (docs/poll-log.md); a rejected poll leaves the last good one served.", "cps",
			query(bySource(rate(monitoring.PollLogPollsRead)), "{{instance}} {{source}} applied"),
			query(fmt.Sprintf("sum by (instance, source, reason) (%s) > 0", rate(monitoring.PollLogRejected)), "{{instance}} {{source}} rejected {{reason}}")))
}

// partitionedRow adds the panels of partitioned replicas (docs/scale-out.md):
// aggregators whose source is kafka://…/TOPIC?group=NAME, each serving the
// switches of its partitions and asking its peers for the rest. An
// aggregator of another kind shows nothing here.
func partitionedRow(b *dashboard.DashboardBuilder, s, rate func(string) string) *dashboard.DashboardBuilder {
	byPeer := func(expr string) string { return fmt.Sprintf("sum by (instance, peer, api) (%s)", expr) }
	latency := func(q string) string {
		return fmt.Sprintf("histogram_quantile(%s, sum by (instance, peer, api, le) (%s))", q, rate(monitoring.FanoutRequestDuration+"_bucket"))
	}
	return b.WithRow(dashboard.NewRowBuilder("Partitioned replicas")).
		WithPanel(timeseriesPanel("Partitions owned and loaded", "Per replica: partitions of the poll log the group assigned to it, and those of them it serves (read up to where they ended when assigned). Owned above loaded is a replica taking partitions over.", "short",
			query(s(monitoring.PollLogPartitionsOwned), "{{instance}} {{source}} owned"),
			query(s(monitoring.PollLogPartitionsLoaded), "{{instance}} {{source}} loaded"))).
		WithPanel(timeseriesPanel("Switches owned", "Per replica: switches in the snapshots it serves from its partitions, all sources together; about the fabric divided by the replicas.", "short",
			query(s(monitoring.PollLogSwitchesOwned), "{{instance}} {{source}}"))).
		WithPanel(timeseriesPanel("Group members and unowned partitions", "The replicas' group as of its latest rebalance: its members, and the partitions nobody owns, whose switches nobody serves (alert FabricPartitionUnowned after 2m).", "short",
			query(fmt.Sprintf("max by (source) (%s)", s(monitoring.PollLogGroupMembers)), "{{source}} members"),
			query(fmt.Sprintf("max by (source) (%s)", s(monitoring.PollLogPartitionsUnowned)), "{{source}} unowned")).
			OverrideByRegexp(".*unowned", []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}}})).
		WithPanel(timeseriesPanel("Rebalances", "Rebalances of the replicas' group each replica took part in, per interval: a replica joining, leaving or dying (a cooperative rebalance takes two rounds).", "short",
			query(fmt.Sprintf("sum by (instance, source) (increase(%s[$__rate_interval])) > 0", s(monitoring.PollLogGroupRebalances)), "{{instance}} {{source}}"))).
		WithPanel(timeseriesPanel("Peers and peers up", "Per replica: the other replicas it knows (the group's other members), and those whose latest request did not time out or fail.", "short",
			query(s(monitoring.FanoutPeers), "{{instance}} peers"),
			query(fmt.Sprintf("sum by (instance) (%s)", s(monitoring.FanoutPeerUp)), "{{instance}} up"))).
		WithPanel(timeseriesPanel("Fan-out latency", "Median and 99th percentile of the requests each replica makes to each peer, by what for (api: remote_read and labels for PromQL, rows for REST), whatever their result.", "s",
			query(latency("0.5"), "{{instance}} → {{peer}} {{api}} p50"),
			query(latency("0.99"), "{{instance}} → {{peer}} {{api}} p99"))).
		WithPanel(timeseriesPanel("Fan-out requests", "Requests per second each replica makes to each peer, by api.", "reqps",
			query(byPeer(rate(monitoring.FanoutRequests)), "{{instance}} → {{peer}} {{api}}"))).
		WithPanel(timeseriesPanel("Fan-out failures", "Requests to peers per second that did not succeed, by peer, api and result: timeout (--fanout.timeout or the asking request's deadline), error, too_large (an answer over its limit). Each makes an answer partial (alert FabricPeerUnreachable when timeouts and errors pass 10% of a peer's requests for 5m).", "reqps",
			query(fmt.Sprintf(`sum by (instance, peer, api, result) (rate(%s{job="%s", instance=~"$%s", result!="success"}[$__rate_interval])) > 0`, monitoring.FanoutRequests, monitoring.Job, instanceVar), "{{instance}} → {{peer}} {{api}} {{result}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)))
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
