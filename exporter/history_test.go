package exporter

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

var historyMetricNames = []string{
	"fabric_history_dropped_snapshots_total", "fabric_history_series", "fabric_history_bytes", "fabric_history_snapshots",
}

// TestHistoryMetrics: each added history's drops by reason (every reason
// from the start), series, bytes and snapshots, per source, as of the
// scrape.
func TestHistoryMetrics(t *testing.T) {
	e := New(&snapshot.Store{}, Options{})
	east, west := history.New(time.Hour), history.New(time.Hour)
	e.AddHistory("east", east)
	e.AddHistory("west", west)
	at := func(k int) *snapshot.Snapshot {
		return historytest.Switches(t, historytest.T0.Add(time.Duration(k)*historytest.Step), historytest.Columns(),
			historytest.Switch{ID: "SW-01", Values: map[string]float64{"Tx_Bytes": float64(k)}},
			historytest.Switch{ID: "SW-02", Values: map[string]float64{"Tx_Bytes": float64(k)}})
	}
	for _, k := range []int{0, 1, 2, 3, 1} { // back from 3 to 1: two rewound
		east.Append(at(k))
	}
	series := func(source string, rewound, snapshots, series int, bytes int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "fabric_history_dropped_snapshots_total{reason=\"rewound\",source=%q} %d\n", source, rewound)
		fmt.Fprintf(&b, "fabric_history_dropped_snapshots_total{reason=\"series_budget\",source=%q} 0\n", source)
		fmt.Fprintf(&b, "fabric_history_series{source=%q} %d\n", source, series)
		fmt.Fprintf(&b, "fabric_history_bytes{source=%q} %d\n", source, bytes)
		fmt.Fprintf(&b, "fabric_history_snapshots{source=%q} %d\n", source, snapshots)
		return b.String()
	}
	want := `
# HELP fabric_history_bytes Bytes the source's PromQL history holds: samples, plain and encoded, and an estimate of its series tables.
# TYPE fabric_history_bytes gauge
# HELP fabric_history_dropped_snapshots_total Snapshots the source's PromQL history dropped, by reason: rewound (the source's time went back, later snapshots dropped), series_budget (oldest dropped for --query.max-history-series, or a snapshot over it alone not kept).
# TYPE fabric_history_dropped_snapshots_total counter
# HELP fabric_history_series Series the source's PromQL history holds, counted per distinct set of rows and columns as --query.max-history-series counts them.
# TYPE fabric_history_series gauge
# HELP fabric_history_snapshots Snapshots the source's PromQL history holds.
# TYPE fabric_history_snapshots gauge
` + series("east", 2, 2, 6, east.Load().Stats().Bytes()) + series("west", 0, 0, 0, 0)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), historyMetricNames...); err != nil {
		t.Fatal(err)
	}
	if east.Load().Stats().Bytes() <= 2*6*8 {
		t.Errorf("east's bytes %d leave out its layout", east.Load().Stats().Bytes())
	}
	problems, err := testutil.GatherAndLint(e.Registry(), historyMetricNames...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestHistoryMetricsPerPartition: a source of a partitioned replica has a
// history per partition it holds. Its series are their sums (snapshots: the
// most any holds), and a history removed (a partition given up) takes its
// series with it but leaves its drops in the counter, which never goes
// back.
func TestHistoryMetricsPerPartition(t *testing.T) {
	e := New(&snapshot.Store{}, Options{})
	p0, p1 := history.New(time.Hour), history.New(time.Hour)
	e.AddHistory("log", p0)
	e.AddHistory("log", p1)
	at := func(k int, ids ...string) *snapshot.Snapshot {
		var sws []historytest.Switch
		for _, id := range ids {
			sws = append(sws, historytest.Switch{ID: id, Values: map[string]float64{"Tx_Bytes": float64(k)}})
		}
		return historytest.Switches(t, historytest.T0.Add(time.Duration(k)*historytest.Step), historytest.Columns(), sws...)
	}
	for _, k := range []int{0, 1, 2, 1} { // back from 2 to 1: one rewound
		p0.Append(at(k, "SW-01", "SW-02"))
	}
	for _, k := range []int{0, 1, 2} {
		p1.Append(at(k, "SW-03"))
	}
	want := func(rewound, series, bytes, snapshots int) string {
		return fmt.Sprintf(`
# HELP fabric_history_bytes Bytes the source's PromQL history holds: samples, plain and encoded, and an estimate of its series tables.
# TYPE fabric_history_bytes gauge
fabric_history_bytes{source="log"} %d
# HELP fabric_history_dropped_snapshots_total Snapshots the source's PromQL history dropped, by reason: rewound (the source's time went back, later snapshots dropped), series_budget (oldest dropped for --query.max-history-series, or a snapshot over it alone not kept).
# TYPE fabric_history_dropped_snapshots_total counter
fabric_history_dropped_snapshots_total{reason="rewound",source="log"} %d
fabric_history_dropped_snapshots_total{reason="series_budget",source="log"} 0
# HELP fabric_history_series Series the source's PromQL history holds, counted per distinct set of rows and columns as --query.max-history-series counts them.
# TYPE fabric_history_series gauge
fabric_history_series{source="log"} %d
# HELP fabric_history_snapshots Snapshots the source's PromQL history holds.
# TYPE fabric_history_snapshots gauge
fabric_history_snapshots{source="log"} %d
`, bytes, rewound, series, snapshots)
	}
	both := want(1, 2*3+3, p0.Load().Stats().Bytes()+p1.Load().Stats().Bytes(), 3)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(both), historyMetricNames...); err != nil {
		t.Fatal(err)
	}
	e.RemoveHistory("log", p0)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want(1, 3, p1.Load().Stats().Bytes(), 3)), historyMetricNames...); err != nil {
		t.Errorf("after partition 0's history was removed: %v", err)
	}
	e.RemoveHistory("log", p1)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want(1, 0, 0, 0)), historyMetricNames...); err != nil {
		t.Errorf("after every history was removed: %v", err)
	}
}

var storageMetricNames = []string{
	"fabric_history_storage_snapshots_loaded", "fabric_history_storage_files_unreadable_total",
	"fabric_history_storage_runs_written_total", "fabric_history_storage_bytes_written_total",
	"fabric_history_storage_failures_total", "fabric_history_storage_runs_unwritten_total",
	"fabric_history_storage_sealed_through_timestamp_seconds",
}

// TestHistoryStorageMetrics: a history kept on disk exports what its Disk
// did, as DiskStats says; one that is not exports nothing of the kind.
func TestHistoryStorageMetrics(t *testing.T) {
	dir := t.TempDir()
	kept := history.New(time.Hour).WithCompression(history.Compression{RunBlocks: 2, Spread: 1, MinRun: 1, MinBatch: 1})
	d, err := kept.Persist(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e := New(&snapshot.Store{}, Options{})
	e.AddHistory("east", kept)
	e.AddHistory("west", history.New(time.Hour))
	for k := range 6 {
		kept.Append(historytest.Fixture(t, k))
	}
	d.Close() // it writes what was sealed, then its stats stay
	st := d.Stats()
	if st.RunsWritten == 0 {
		t.Fatalf("nothing written: %+v", st)
	}
	want := fmt.Sprintf(`
# HELP fabric_history_storage_bytes_written_total Bytes of history files written under --storage.path.
# TYPE fabric_history_storage_bytes_written_total counter
fabric_history_storage_bytes_written_total{source="east"} %d
# HELP fabric_history_storage_failures_total Writes and deletions of history files under --storage.path that failed (each is tried again).
# TYPE fabric_history_storage_failures_total counter
fabric_history_storage_failures_total{source="east"} 0
# HELP fabric_history_storage_files_unreadable_total History files under --storage.path skipped at start-up: corrupt, truncated, of an unknown format version, or a run whose layout is unreadable.
# TYPE fabric_history_storage_files_unreadable_total counter
fabric_history_storage_files_unreadable_total{source="east"} 0
# HELP fabric_history_storage_runs_unwritten_total Sealed runs of the source's PromQL history that left it before they could be written under --storage.path.
# TYPE fabric_history_storage_runs_unwritten_total counter
fabric_history_storage_runs_unwritten_total{source="east"} 0
# HELP fabric_history_storage_runs_written_total Sealed runs of the source's PromQL history written under --storage.path.
# TYPE fabric_history_storage_runs_written_total counter
fabric_history_storage_runs_written_total{source="east"} %d
# HELP fabric_history_storage_sealed_through_timestamp_seconds Time of the newest snapshot of the source's PromQL history kept under --storage.path: a restart loads the history up to it. 0 when none is.
# TYPE fabric_history_storage_sealed_through_timestamp_seconds gauge
fabric_history_storage_sealed_through_timestamp_seconds{source="east"} %g
# HELP fabric_history_storage_snapshots_loaded Snapshots of the source's PromQL history loaded from --storage.path at start-up.
# TYPE fabric_history_storage_snapshots_loaded gauge
fabric_history_storage_snapshots_loaded{source="east"} 0
`, st.BytesWritten, st.RunsWritten, float64(st.SealedThrough.UnixMilli())/1e3)
	if err := testutil.GatherAndCompare(e.Registry(), strings.NewReader(want), storageMetricNames...); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(e.Registry(), storageMetricNames...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
