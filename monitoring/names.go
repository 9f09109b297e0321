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

// Self-metrics of the aggregator (package exporter). The tests check each of
// them against the exporter's real /metrics, so a rename there fails here.
const (
	IngestDuration       = schema.Namespace + "_ingest_duration_seconds"       // histogram
	IngestPhaseDuration  = schema.Namespace + "_ingest_phase_duration_seconds" // histogram, label phase
	IngestTotal          = schema.Namespace + "_ingest_total"                  // label result=success|failure
	IngestFailures       = schema.Namespace + "_ingest_failures_total"         // label reason
	IngestLastSuccess    = schema.Namespace + "_ingest_last_success_timestamp_seconds"
	SourceUp             = schema.Namespace + "_source_up"
	SnapshotTimestamp    = schema.Namespace + "_snapshot_timestamp_seconds"
	SnapshotSwitches     = schema.Namespace + "_snapshot_switches"
	SnapshotSeries       = schema.Namespace + "_snapshot_series"
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

// Recording rules of prometheus/recording.yml that the dashboards read. Names
// follow level:metric:operations; the tests check that each is recorded.
const (
	RecIngestQuantile      = "instance_quantile:" + IngestDuration + ":histogram_quantile"
	RecIngestPhaseQuantile = "instance_phase_quantile:" + IngestPhaseDuration + ":histogram_quantile"
	RecIngestFailureRatio  = "instance:" + schema.Namespace + "_ingest_failures:ratio_rate5m"
	RecIngestFailureRate   = "instance_reason:" + schema.Namespace + "_ingest_failures:rate5m"
	RecHTTPQuantile        = "instance_handler_quantile:" + HTTPRequestDuration + ":histogram_quantile"
	RecHTTPRequestRate     = "instance_handler:" + schema.Namespace + "_http_requests:rate5m"
)

// RecordingRules lists the constants above, for the tests.
var RecordingRules = []string{
	RecIngestQuantile, RecIngestPhaseQuantile, RecIngestFailureRatio,
	RecIngestFailureRate, RecHTTPQuantile, RecHTTPRequestRate,
}
