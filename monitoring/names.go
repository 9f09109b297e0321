// Package monitoring holds what the monitoring stack (Grafana dashboards,
// Prometheus alert and recording rules, prometheus.yml, docker-compose.yml)
// shares: the names of the aggregator's self-metrics, the scrape job and the
// recording rules. Data metric names are not here: they come from
// schema.Default(), the one table that names them.
//
// The tests of this package check the stack with the ecosystem's own tools:
// promtool (config, rules and rule unit tests), the PromQL parser (every
// metric a dashboard or rule uses must be one the exporter really exposes),
// the compose-spec loader and the Grafana foundation SDK.
package monitoring

import "github.com/fabrictelemetry/aggregator/schema"

// Job is the scrape job of the aggregator in prometheus.yml, the value of
// the job label that the alerts and the aggregator health dashboard select.
const Job = "fabric-aggregator"

// SourceLabel names the configured source on every ingestion self-metric
// (the Ingest* and SourceUp metrics below): one series, or one set, per
// source. The Snapshot* gauges describe the whole served view and have no
// such label.
const SourceLabel = "source"

// Self-metrics of the aggregator (package exporter). The tests check each of
// them against the exporter's real /metrics, so a rename there fails here.
const (
	IngestDuration       = schema.Namespace + "_ingest_duration_seconds"               // histogram, label source
	IngestPhaseDuration  = schema.Namespace + "_ingest_phase_duration_seconds"         // histogram, labels source, phase
	IngestTotal          = schema.Namespace + "_ingest_total"                          // labels source, result=success|failure
	IngestFailures       = schema.Namespace + "_ingest_failures_total"                 // labels source, reason
	IngestLastSuccess    = schema.Namespace + "_ingest_last_success_timestamp_seconds" // label source
	SourceUp             = schema.Namespace + "_source_up"                             // label source
	SnapshotTimestamp    = schema.Namespace + "_snapshot_timestamp_seconds"            // the view's newest part
	SnapshotSwitches     = schema.Namespace + "_snapshot_switches"                     // distinct, all parts
	SnapshotSeries       = schema.Namespace + "_snapshot_series"                       // all parts
	BuildInfo            = schema.Namespace + "_aggregator_build_info"
	HTTPRequests         = schema.Namespace + "_http_requests_total"           // labels handler, code, method
	HTTPRequestDuration  = schema.Namespace + "_http_request_duration_seconds" // histogram, labels handler, method
	ProcessResidentBytes = "process_resident_memory_bytes"
	ProcessCPUSeconds    = "process_cpu_seconds_total"
	ProcessOpenFDs       = "process_open_fds"
	GoGoroutines         = "go_goroutines"
	GoHeapInuseBytes     = "go_memstats_heap_inuse_bytes"
	GoHeapAllocBytes     = "go_memstats_heap_alloc_bytes"
	GoGCDuration         = "go_gc_duration_seconds" // summary
)

// SelfMetrics lists the constants above, for the tests.
var SelfMetrics = []string{
	IngestDuration, IngestPhaseDuration, IngestTotal, IngestFailures, IngestLastSuccess,
	SourceUp, SnapshotTimestamp, SnapshotSwitches, SnapshotSeries, BuildInfo,
	HTTPRequests, HTTPRequestDuration,
	ProcessResidentBytes, ProcessCPUSeconds, ProcessOpenFDs,
	GoGoroutines, GoHeapInuseBytes, GoHeapAllocBytes, GoGCDuration,
}

// Self-metrics of the poll log (package kafkalog), on the /metrics of an
// aggregator that publishes its polls (--kafka.publish) or follows a topic
// (a kafka:// source). Label source is the source published, or the
// aggregator's name for the source it follows. The tests check each of them
// against a real publisher's and follower's registry.
const (
	PollLogRecordsWritten      = schema.Namespace + "_polllog_records_written_total"      // label source
	PollLogBytesWritten        = schema.Namespace + "_polllog_bytes_written_total"        // label source
	PollLogPollsWritten        = schema.Namespace + "_polllog_polls_written_total"        // label source
	PollLogPublishDuration     = schema.Namespace + "_polllog_publish_duration_seconds"   // histogram, label source
	PollLogTransactionsAborted = schema.Namespace + "_polllog_transactions_aborted_total" // label source
	PollLogPollsDropped        = schema.Namespace + "_polllog_polls_dropped_total"        // labels source, reason=buffer_full|unencodable|stale
	PollLogPublisherActive     = schema.Namespace + "_polllog_publisher_active"           // label source; 1 while holding the lease
	PollLogBufferedPolls       = schema.Namespace + "_polllog_buffered_polls"             // label source
	PollLogLeaseAcquired       = schema.Namespace + "_polllog_lease_acquired_total"       // label source
	PollLogRecordsRead         = schema.Namespace + "_polllog_records_read_total"         // label source
	PollLogBytesRead           = schema.Namespace + "_polllog_bytes_read_total"           // label source
	PollLogPollsRead           = schema.Namespace + "_polllog_polls_read_total"           // label source
	PollLogRejected            = schema.Namespace + "_polllog_rejected_total"             // labels source, reason
	PollLogConsumerLag         = schema.Namespace + "_polllog_consumer_lag_records"       // labels source, partition
	PollLogBehind              = schema.Namespace + "_polllog_behind_seconds"             // label source; 0 when caught up
	PollLogFollowerReady       = schema.Namespace + "_polllog_follower_ready"             // label source
)

// PollLogMetrics lists the constants above, for the tests.
var PollLogMetrics = []string{
	PollLogRecordsWritten, PollLogBytesWritten, PollLogPollsWritten, PollLogPublishDuration,
	PollLogTransactionsAborted, PollLogPollsDropped, PollLogPublisherActive, PollLogBufferedPolls,
	PollLogLeaseAcquired, PollLogRecordsRead, PollLogBytesRead, PollLogPollsRead, PollLogRejected,
	PollLogConsumerLag, PollLogBehind, PollLogFollowerReady,
}

// Self-metrics of partitioned replicas (docs/scale-out.md): aggregators
// whose source is kafka://…/TOPIC?group=NAME. The group follower's (package
// kafkalog; label source is the kafka:// source's name) and the fan-out's to
// the other replicas (package cluster; peer is a peer's base URL, its
// --web.external-url). The tests check each of them against the real
// packages' registries.
const (
	PollLogPartitionsOwned   = schema.Namespace + "_polllog_partitions_owned"        // label source
	PollLogPartitionsLoaded  = schema.Namespace + "_polllog_partitions_loaded"       // label source
	PollLogPartitionsUnowned = schema.Namespace + "_polllog_partitions_unowned"      // label source; as of the latest rebalance
	PollLogSwitchesOwned     = schema.Namespace + "_polllog_switches_owned"          // label source
	PollLogGroupMembers      = schema.Namespace + "_polllog_group_members"           // label source; this replica included
	PollLogGroupRebalances   = schema.Namespace + "_polllog_group_rebalances_total"  // label source
	FanoutRequests           = schema.Namespace + "_fanout_requests_total"           // labels api=remote_read|labels|rows, peer, result=success|timeout|too_large|error
	FanoutRequestDuration    = schema.Namespace + "_fanout_request_duration_seconds" // histogram, labels api, peer
	FanoutPeers              = schema.Namespace + "_fanout_peers"                    // the other replicas the membership names
	FanoutPeerUp             = schema.Namespace + "_fanout_peer_up"                  // label peer; 0 when its latest request failed
)

// PartitionedMetrics lists the constants above, for the tests.
var PartitionedMetrics = []string{
	PollLogPartitionsOwned, PollLogPartitionsLoaded, PollLogPartitionsUnowned, PollLogSwitchesOwned,
	PollLogGroupMembers, PollLogGroupRebalances,
	FanoutRequests, FanoutRequestDuration, FanoutPeers, FanoutPeerUp,
}

// Recording rules of prometheus/recording.yml that the dashboards read. Names
// follow level:metric:operations, the level naming the labels kept besides
// job; the tests check that each is recorded.
const (
	RecIngestQuantile      = "instance_source_quantile:" + IngestDuration + ":histogram_quantile"
	RecIngestPhaseQuantile = "instance_source_phase_quantile:" + IngestPhaseDuration + ":histogram_quantile"
	RecIngestFailureRatio  = "instance_source:" + schema.Namespace + "_ingest_failures:ratio_rate5m"
	RecIngestFailureRate   = "instance_source_reason:" + schema.Namespace + "_ingest_failures:rate5m"
	RecHTTPQuantile        = "instance_handler_quantile:" + HTTPRequestDuration + ":histogram_quantile"
	RecHTTPRequestRate     = "instance_handler:" + schema.Namespace + "_http_requests:rate5m"
	RecPublishQuantile     = "instance_source_quantile:" + PollLogPublishDuration + ":histogram_quantile"
)

// RecordingRules lists the constants above, for the tests.
var RecordingRules = []string{
	RecIngestQuantile, RecIngestPhaseQuantile, RecIngestFailureRatio,
	RecIngestFailureRate, RecHTTPQuantile, RecHTTPRequestRate, RecPublishQuantile,
}
