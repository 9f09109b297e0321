// Package queryapi answers PromQL over the recent history of snapshots with
// a Prometheus-compatible HTTP API, so that Grafana or any Prometheus client
// can use the aggregator itself as a data source.
//
// The samples come from one history per source (package history); a query
// evaluates with the real PromQL engine over their union, each source's
// series with its own samples and times. Around the engine, this package
// does what Prometheus's web API does: it reads the parameters and enforces
// the limits, writes the response envelope with its error types, serves
// the label and metadata endpoints, and queues queries at a concurrency
// gate.
package queryapi
