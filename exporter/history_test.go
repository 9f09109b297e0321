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
