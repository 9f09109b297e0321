// Package history keeps the recent snapshots of a source for the PromQL
// engine to read: ingest parses a poll, snapshot holds it, history keeps the
// last retention period of them, and queryapi answers queries over them.
//
// Each source's writer appends its accepted snapshots to its own History: a
// bounded, copy-on-write list of immutable blocks, one per snapshot,
// published through an atomic pointer. A query loads each history's pointer
// once and evaluates over a storage.Queryable backed by the loaded views
// (their union when there are several sources, see Union), so readers never
// lock and never see a half-appended snapshot, and a source that stops
// publishing keeps its samples' true times.
//
// The newest blocks hold plain values; older ones are encoded in runs, per
// series (codec.go), by the writer a little at each Append, which keeps an
// hour of the per-port fabric in about a third of the memory.
//
// A history follows what is served: a snapshot older than the newest block
// rewinds it (the later blocks are dropped), so that it always ends with the
// snapshot REST serves, and a series budget (WithMaxSeries) bounds what a
// source whose rows keep changing can hold, the oldest blocks going first.
// What either drops is counted by reason (Dropped), logged, and kept as a
// streak (Streak) that the aggregator's readiness reads.
//
// A history can be kept in a directory (Persist): the encoded runs, which
// never change once sealed, are written by a goroutine of their own as they
// seal, each to a checksummed file of its own, and loaded back at start-up;
// only the head, the newest blocks not yet in a run, is lost with the
// process (disk.go, diskfile.go).
//
// Series are named and scaled exactly as /metrics exports them: the metric
// name of the column from the schema, the row's identity labels (an empty
// value is no label), and the source value times the column's scale.
package history
