package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// generation is snapshot k of a source whose switch ids change between
// generations, as a churning source's do: n switches named after gen, the
// fixture's three columns, so n×3 series in a layout of their own.
func generation(tb testing.TB, gen string, n, k int) *snapshot.Snapshot {
	rows := make([]historytest.Switch, n)
	for i := range rows {
		rows[i] = historytest.Switch{ID: fmt.Sprintf("%s-%02d", gen, i), Values: map[string]float64{
			"Tx_Bytes": float64(100*k + i), "Temperature_C": float64(40 + i), "Latency_Avg_uSec": float64(k) / 4,
		}}
	}
	return historytest.Switches(tb, t0.Add(time.Duration(k)*step), historytest.Columns(), rows...)
}

// churn is the sequence the budget tests append: generations A (k=0..2), B
// (k=3, 4), C (k=5), D (k=6) of three switches (9 series each), E (k=7, 8)
// of two (6 series), then F (k=9) of eleven (33 series), then E again.
func churn(tb testing.TB) []*snapshot.Snapshot {
	var snaps []*snapshot.Snapshot
	for k, gen := range []string{"A", "A", "A", "B", "B", "C", "D"} {
		snaps = append(snaps, generation(tb, gen, 3, k))
	}
	snaps = append(snaps, generation(tb, "E", 2, 7), generation(tb, "E", 2, 8), generation(tb, "F", 11, 9))
	return append(snaps, generation(tb, "E", 2, 10))
}

// With a budget of 30 series, the oldest layouts go first, whole, when a new
// one would go over; a snapshot of more series than the budget is not
// appended; what is kept answers queries as a history fed only the kept
// snapshots does, with and without encoded runs.
func TestSeriesBudget(t *testing.T) {
	snaps := churn(t)
	for _, c := range []Compression{{}, {RunBlocks: 2, Spread: 1, MinRun: 1, MinBatch: 1}} {
		t.Run(fmt.Sprintf("runs-of-%d", c.RunBlocks), func(t *testing.T) {
			h := New(time.Hour).WithCompression(c).WithMaxSeries(30)
			next := 0
			for _, step := range []struct {
				k       int   // snaps[k] is appended
				kept    []int // the snapshots the history holds after it
				series  int
				dropped uint64 // Dropped(SeriesBudget) after it
				streak  int
			}{
				{5, []int{0, 1, 2, 3, 4, 5}, 27, 0, 0},
				{6, []int{3, 4, 5, 6}, 27, 3, 1},      // D: A goes, all three
				{7, []int{5, 6, 7}, 24, 5, 2},         // E: B goes
				{8, []int{5, 6, 7, 8}, 24, 5, 0},      // E again: nothing new
				{9, []int{5, 6, 7, 8}, 24, 6, 1},      // F alone is over the budget
				{10, []int{5, 6, 7, 8, 10}, 24, 6, 0}, // E after F: F was never there
			} {
				for ; next <= step.k; next++ {
					h.Append(snaps[next])
				}
				var want []time.Time
				oracle := New(time.Hour).WithCompression(c)
				for _, k := range step.kept {
					want = append(want, snaps[k].Time())
					oracle.Append(snaps[k])
				}
				if got := h.Load().Times(); !slices.Equal(got, want) {
					t.Fatalf("after snapshot %d: times %v, want %v", step.k, got, want)
				}
				st := h.Load().Stats()
				if st.Series != step.series || h.Dropped(SeriesBudget) != step.dropped || h.Streak().Appends != step.streak {
					t.Errorf("after snapshot %d: %d series, %d dropped, streak %+v; want %d, %d, %d",
						step.k, st.Series, h.Dropped(SeriesBudget), h.Streak(), step.series, step.dropped, step.streak)
				}
				if h.Dropped(Rewound) != 0 {
					t.Errorf("after snapshot %d: %d rewound", step.k, h.Dropped(Rewound))
				}
				compareHistories(t, oracle, h, step.k)
			}
		})
	}
}

// The streak says what the newest drop was, in words an operator reads in
// /-/ready.
func TestSeriesBudgetStreakDetail(t *testing.T) {
	snaps := churn(t)
	h := New(time.Hour).WithMaxSeries(30)
	for _, s := range snaps[:10] {
		h.Append(s)
	}
	st := h.Streak()
	if st.Reason != SeriesBudget || !strings.Contains(st.Detail, "33 series") || !strings.Contains(st.Detail, "budget of 30") {
		t.Errorf("streak after the oversize snapshot: %+v", st)
	}
}

// A run being encoded from a layout the budget drops is abandoned, so that
// nothing keeps the dropped blocks alive.
func TestSeriesBudgetAbandonsPendingRun(t *testing.T) {
	snaps := churn(t)
	// One series per append: A's run (k=0, 1) is still pending when D comes.
	h := New(time.Hour).WithCompression(Compression{RunBlocks: 2, Spread: 100, MinRun: 1, MinBatch: 1}).WithMaxSeries(30)
	for _, s := range snaps[:6] {
		h.Append(s)
	}
	if h.pending == nil || h.pending.lay != h.Load().blocks[0].lay {
		t.Fatal("A's run is not pending")
	}
	a := h.pending.lay
	h.Append(snaps[6])
	if h.pending != nil && h.pending.lay == a {
		t.Error("the pending run of the dropped layout A is still there")
	}
}

// No budget (0) drops nothing.
func TestNoSeriesBudget(t *testing.T) {
	h := New(time.Hour).WithMaxSeries(0)
	for _, s := range churn(t) {
		h.Append(s)
	}
	if h.Load().Len() != len(churn(t)) || h.Dropped(SeriesBudget) != 0 {
		t.Errorf("%d snapshots kept, %d dropped", h.Load().Len(), h.Dropped(SeriesBudget))
	}
}

// Each reason counts its own drops, and an unknown reason counts nothing.
func TestDroppedByReason(t *testing.T) {
	h := New(time.Hour).WithMaxSeries(30)
	for _, s := range churn(t)[:7] { // D drops A's three blocks
		h.Append(s)
	}
	h.Append(generation(t, "D", 3, 4)) // back from k=6 to 4: two blocks rewound
	if got := [...]uint64{h.Dropped(Rewound), h.Dropped(SeriesBudget), h.Dropped("retention")}; got != [...]uint64{2, 3, 0} {
		t.Errorf("rewound, series_budget, unknown = %v, want [2 3 0]", got)
	}
	if !slices.Equal(DropReasons[:], []DropReason{"rewound", "series_budget"}) {
		t.Errorf("DropReasons %v", DropReasons)
	}
}

// Drops are logged at once the first time, then summed up into one line at
// most a minute, flushed by the next append after the minute even when
// that append drops nothing.
func TestDropLogs(t *testing.T) {
	var buf bytes.Buffer
	h := New(time.Hour).WithMaxSeries(9).WithLogger(slog.New(slog.NewJSONHandler(&buf, nil)))
	clock := t0
	h.drops.now = func() time.Time { return clock }
	lines := func() []map[string]any {
		var out []map[string]any
		for line := range strings.Lines(buf.String()) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatal(err)
			}
			out = append(out, m)
		}
		return out
	}
	// Every generation drops the one before: an eviction per append.
	for k := range 6 {
		h.Append(generation(t, fmt.Sprintf("G%d", k), 3, k))
		clock = clock.Add(step)
	}
	got := lines()
	if len(got) != 1 || got[0]["msg"] != "History over its series budget: the oldest snapshots are dropped" ||
		got[0]["level"] != "WARN" || got[0]["drops"] != 1.0 || got[0]["dropped_snapshots"] != 1.0 || got[0]["max_series"] != 9.0 {
		t.Fatalf("after the first five drops: %v", got)
	}
	clock = clock.Add(time.Minute)
	h.Append(generation(t, "G5", 3, 6)) // drops nothing: flushes the four held back
	got = lines()
	if len(got) != 2 || got[1]["drops"] != 4.0 || got[1]["dropped_snapshots"] != 4.0 {
		t.Fatalf("after a minute: %v", got[1:])
	}
	h.Append(generation(t, "G6", 3, 7))
	if got = lines(); len(got) != 2 {
		t.Errorf("a drop within the minute of the summary was logged: %v", got[2:])
	}
}
