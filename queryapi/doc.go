// Package queryapi answers PromQL over the recent history of snapshots with
// a Prometheus-compatible HTTP API, so that Grafana or any Prometheus client
// can use the aggregator itself as a data source.
//
// The writer appends each accepted snapshot to a History: a bounded,
// copy-on-write list of immutable blocks, one per snapshot, published through
// an atomic pointer. A query loads that pointer once and evaluates with the
// real PromQL engine over a storage.Queryable backed by the loaded view, so
// readers never lock and never see a half-appended snapshot.
//
// Series are named and scaled exactly as /metrics exports them: the metric
// name of the column from the schema, the row's identity labels, and the
// source value times the column's scale.
package queryapi
