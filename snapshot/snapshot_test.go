package snapshot

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
)

var t0 = time.Date(2026, 11, 25, 19, 30, 0, 123456789, time.FixedZone("CET", 3600))

// row is one input row for build: labels and one value per column.
type row struct {
	labels []string
	values []Value
}

func build(t *testing.T, labelNames, columns []string, rows []row, prev *Snapshot) (*Snapshot, error) {
	t.Helper()
	b := NewBuilder(labelNames, columns, 1)
	for _, r := range rows {
		i := b.AddRow(r.labels...)
		for col, v := range r.values {
			if v.Present() {
				b.Set(i, col, v)
			}
		}
	}
	if prev != nil {
		b.ShareIndex(prev)
	}
	return b.Build(t0, make([]schema.Metric, len(columns)))
}

// buildShadowing builds as the parser does: ShareIndex before the first
// row, then AddRowValues, so rows equal to prev's are compared, not copied.
func buildShadowing(t *testing.T, labelNames, columns []string, rows []row, prev *Snapshot) *Snapshot {
	t.Helper()
	b := NewBuilder(labelNames, columns, 1)
	b.ShareIndex(prev)
	for _, r := range rows {
		b.AddRowValues(r.labels, r.values)
	}
	s, err := b.Build(t0, make([]schema.Metric, len(columns)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustBuild(t *testing.T, labelNames, columns []string, rows []row, prev *Snapshot) *Snapshot {
	t.Helper()
	s, err := build(t, labelNames, columns, rows, prev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dump lists a snapshot's rows as "labels: values" in row order.
func dump(s *Snapshot) []string {
	var out []string
	for r := range s.NumRows() {
		line := fmt.Sprint(s.RowLabels(r)) + " :"
		for c := range s.Columns() {
			if v := s.Value(r, c); v.Present() {
				line += " " + string(v.AppendText(nil))
			} else {
				line += " _"
			}
		}
		out = append(out, line)
	}
	return out
}

func TestBuildSortsRows(t *testing.T) {
	tests := []struct {
		name       string
		labelNames []string
		rows       []row
		want       []string
		switches   []string
	}{
		{
			name:       "switch ids in string order",
			labelNames: []string{"switch_id"},
			rows: []row{
				{[]string{"SW-9"}, []Value{UintValue(9)}},
				{[]string{"SW-10"}, []Value{UintValue(10)}},
				{[]string{"SW-01"}, []Value{UintValue(1)}},
				{[]string{"AB"}, []Value{IntValue(-1)}},
			},
			want:     []string{"[AB] : -1", "[SW-01] : 1", "[SW-10] : 10", "[SW-9] : 9"},
			switches: []string{"AB", "SW-01", "SW-10", "SW-9"},
		},
		{
			name:       "already sorted",
			labelNames: []string{"switch_id"},
			rows: []row{
				{[]string{"SW-01"}, []Value{FloatValue(0.5)}},
				{[]string{"SW-02"}, []Value{{}}},
			},
			want:     []string{"[SW-01] : 0.5", "[SW-02] : _"},
			switches: []string{"SW-01", "SW-02"},
		},
		{
			name:       "ports numerically within a switch",
			labelNames: []string{"switch_id", "port"},
			rows: []row{
				{[]string{"SW-2", "10"}, []Value{UintValue(210)}},
				{[]string{"SW-1", "10"}, []Value{UintValue(110)}},
				{[]string{"SW-2", "9"}, []Value{UintValue(209)}},
				{[]string{"SW-1", "2"}, []Value{UintValue(102)}},
				{[]string{"SW-1", "x"}, []Value{UintValue(100)}},
				{[]string{"SW-1", "100"}, []Value{UintValue(199)}},
			},
			want: []string{
				"[SW-1 2] : 102", "[SW-1 10] : 110", "[SW-1 100] : 199", "[SW-1 x] : 100",
				"[SW-2 9] : 209", "[SW-2 10] : 210",
			},
			switches: []string{"SW-1", "SW-2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustBuild(t, tt.labelNames, []string{"m"}, tt.rows, nil)
			if got := dump(s); !slices.Equal(got, tt.want) {
				t.Errorf("rows:\n got %q\nwant %q", got, tt.want)
			}
			if got := s.Switches(); !slices.Equal(got, tt.switches) {
				t.Errorf("Switches() = %q, want %q", got, tt.switches)
			}
			// Each switch's row range covers exactly its rows.
			for _, id := range tt.switches {
				start, end, ok := s.SwitchRows(id)
				if !ok || start >= end {
					t.Fatalf("SwitchRows(%q) = %d, %d, %v", id, start, end, ok)
				}
				for r := range s.NumRows() {
					if in := r >= start && r < end; in != (s.RowLabels(r)[0] == id) {
						t.Errorf("SwitchRows(%q) = [%d,%d) but row %d is %v", id, start, end, r, s.RowLabels(r))
					}
				}
			}
			if _, _, ok := s.SwitchRows("nope"); ok {
				t.Error("SwitchRows of an unknown switch is ok")
			}
		})
	}
}

func TestBuildMetadata(t *testing.T) {
	s := mustBuild(t, []string{"switch_id"}, []string{"a", "b", "c"}, []row{
		{[]string{"SW-01"}, []Value{UintValue(1), {}, FloatValue(2)}},
		{[]string{"SW-02"}, []Value{{}, {}, IntValue(-3)}},
	}, nil)
	if got, want := s.TimeText(), "2026-11-25T18:30:00.123Z"; got != want {
		t.Errorf("TimeText() = %q, want %q", got, want)
	}
	if !s.Time().Equal(t0) {
		t.Errorf("Time() = %v, want %v", s.Time(), t0)
	}
	if got := s.Columns(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Columns() = %q", got)
	}
	for i, c := range s.Columns() {
		if got, ok := s.Column(c); !ok || got != i {
			t.Errorf("Column(%q) = %d, %v, want %d", c, got, ok, i)
		}
	}
	if _, ok := s.Column("d"); ok {
		t.Error("Column of an unknown name is ok")
	}
	if got := s.Series(); got != 3 {
		t.Errorf("Series() = %d, want 3 present values", got)
	}
	if len(s.Metrics()) != 3 {
		t.Errorf("Metrics() has %d entries, want 3", len(s.Metrics()))
	}
}

// TestWithTime: a copy stamped with another time has the same rows and
// values, shared, and leaves the original as it was.
func TestWithTime(t *testing.T) {
	s := mustBuild(t, []string{"switch_id"}, []string{"a"}, []row{
		{[]string{"SW-01"}, []Value{UintValue(1)}},
		{[]string{"SW-02"}, []Value{FloatValue(2)}},
	}, nil)
	later := t0.Add(365 * 24 * time.Hour)
	c := s.WithTime(later)
	if !c.Time().Equal(later) || c.TimeText() != FormatTime(later) {
		t.Errorf("copy's time %v (%s), want %v", c.Time(), c.TimeText(), later)
	}
	if !s.Time().Equal(t0) || s.TimeText() != FormatTime(t0) {
		t.Errorf("original's time changed to %v (%s)", s.Time(), s.TimeText())
	}
	if !c.SameRows(s) || !slices.Equal(c.Switches(), s.Switches()) || c.Value(1, 0) != s.Value(1, 0) {
		t.Error("the copy does not share the original's rows and values")
	}
}

// OfSwitches keeps every row of the switches asked for, ports included,
// with their values and the snapshot's time, and nothing else.
func TestOfSwitches(t *testing.T) {
	s := mustBuild(t, []string{"switch_id", "port"}, []string{"a"}, []row{
		{[]string{"SW-01", "1"}, []Value{UintValue(1)}},
		{[]string{"SW-02", "1"}, []Value{UintValue(21)}},
		{[]string{"SW-02", "2"}, []Value{FloatValue(2.5)}},
		{[]string{"SW-03", "1"}, []Value{UintValue(3)}},
	}, nil)
	got, err := s.OfSwitches([]string{"SW-02", "SW-99"})
	if err != nil {
		t.Fatal(err)
	}
	if got.NumRows() != 2 || !slices.Equal(got.Switches(), []string{"SW-02"}) || !got.Time().Equal(s.Time()) {
		t.Fatalf("%d rows of %v at %v, want SW-02's 2 rows at %v", got.NumRows(), got.Switches(), got.Time(), s.Time())
	}
	for row, want := range []Value{UintValue(21), FloatValue(2.5)} {
		if got.Value(row, 0) != want || got.RowLabels(row)[1] != []string{"1", "2"}[row] {
			t.Errorf("row %d: %v %v, want port %d = %v", row, got.RowLabels(row), got.Value(row, 0), row+1, want)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name       string
		labelNames []string
		rows       []row
		duplicate  bool
	}{
		{"duplicate switch", []string{"switch_id"}, []row{
			{[]string{"SW-01"}, nil}, {[]string{"SW-02"}, nil}, {[]string{"SW-01"}, nil},
		}, true},
		{"duplicate switch and port", []string{"switch_id", "port"}, []row{
			{[]string{"SW-01", "1"}, nil}, {[]string{"SW-01", "2"}, nil}, {[]string{"SW-01", "1"}, nil},
		}, true},
		{"first label is not switch_id", []string{"port", "switch_id"}, []row{{[]string{"1", "SW-01"}, nil}}, false},
		{"no labels", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := build(t, tt.labelNames, []string{"m"}, tt.rows, nil)
			if err == nil {
				t.Fatalf("Build succeeded: %v", dump(s))
			}
			if got := errors.Is(err, ErrDuplicateRow); got != tt.duplicate {
				t.Errorf("errors.Is(%v, ErrDuplicateRow) = %v, want %v", err, got, tt.duplicate)
			}
		})
	}
	t.Run("metric count differs from columns", func(t *testing.T) {
		b := NewBuilder([]string{"switch_id"}, []string{"a", "b"}, 1)
		b.AddRow("SW-01")
		if _, err := b.Build(t0, make([]schema.Metric, 1)); err == nil {
			t.Error("Build with 1 metric for 2 columns succeeded")
		}
	})
}

func TestShareIndex(t *testing.T) {
	names := []string{"switch_id", "port"}
	rowsA := []row{
		{[]string{"SW-01", "1"}, []Value{UintValue(1)}},
		{[]string{"SW-01", "2"}, []Value{UintValue(2)}},
		{[]string{"SW-02", "1"}, []Value{UintValue(3)}},
	}
	prev := mustBuild(t, names, []string{"m"}, rowsA, nil)

	tests := []struct {
		name  string
		rows  []row
		share bool
	}{
		{"same rows, new values", []row{
			{[]string{"SW-01", "1"}, []Value{UintValue(10)}},
			{[]string{"SW-01", "2"}, []Value{UintValue(20)}},
			{[]string{"SW-02", "1"}, []Value{UintValue(30)}},
		}, true},
		{"same rows in another order", []row{
			{[]string{"SW-02", "1"}, []Value{UintValue(30)}},
			{[]string{"SW-01", "2"}, []Value{UintValue(20)}},
			{[]string{"SW-01", "1"}, []Value{UintValue(10)}},
		}, true},
		{"a switch more", []row{
			{[]string{"SW-01", "1"}, []Value{UintValue(10)}},
			{[]string{"SW-01", "2"}, []Value{UintValue(20)}},
			{[]string{"SW-02", "1"}, []Value{UintValue(30)}},
			{[]string{"SW-03", "1"}, []Value{UintValue(40)}},
		}, false},
		{"a switch fewer", []row{
			{[]string{"SW-01", "1"}, []Value{UintValue(10)}},
			{[]string{"SW-01", "2"}, []Value{UintValue(20)}},
		}, false},
		{"same count, another port", []row{
			{[]string{"SW-01", "1"}, []Value{UintValue(10)}},
			{[]string{"SW-01", "3"}, []Value{UintValue(20)}},
			{[]string{"SW-02", "1"}, []Value{UintValue(30)}},
		}, false},
	}
	for _, tt := range tests {
		for _, shadowing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/shadowing=%v", tt.name, shadowing), func(t *testing.T) {
				s := mustBuild(t, names, []string{"m"}, tt.rows, prev)
				if shadowing {
					s = buildShadowing(t, names, []string{"m"}, tt.rows, prev)
				}
				if got := s.SameRows(prev); got != tt.share {
					t.Errorf("SameRows(prev) = %v, want %v", got, tt.share)
				}
				checkSameAsFresh(t, s, names, tt.rows, prev)
			})
		}
	}
	t.Run("fresh snapshot does not share with an unrelated one", func(t *testing.T) {
		other := mustBuild(t, names, []string{"m"}, rowsA, nil)
		if other.SameRows(prev) {
			t.Error("two independently built snapshots report SameRows")
		}
		if !prev.SameRows(prev) {
			t.Error("a snapshot does not have the same rows as itself")
		}
		if prev.SameRows(nil) {
			t.Error("SameRows(nil) is true")
		}
	})
}

// checkSameAsFresh checks that s, built with ShareIndex(prev), answers for
// its rows as a snapshot built without prev does: rows, values and index.
func checkSameAsFresh(t *testing.T, s *Snapshot, names []string, rows []row, prev *Snapshot) {
	t.Helper()
	fresh := mustBuild(t, names, []string{"m"}, rows, nil)
	if got, want := dump(s), dump(fresh); !slices.Equal(got, want) {
		t.Errorf("rows with ShareIndex %q, without %q", got, want)
	}
	if got, want := s.Switches(), fresh.Switches(); !slices.Equal(got, want) {
		t.Errorf("Switches() = %q, want %q", got, want)
	}
	for _, id := range fresh.Switches() {
		gs, ge, gok := s.SwitchRows(id)
		ws, we, wok := fresh.SwitchRows(id)
		if gs != ws || ge != we || gok != wok {
			t.Errorf("SwitchRows(%q) = %d,%d,%v, want %d,%d,%v", id, gs, ge, gok, ws, we, wok)
		}
	}
	for _, id := range prev.Switches() {
		if _, _, ok := fresh.SwitchRows(id); !ok {
			if _, _, got := s.SwitchRows(id); got {
				t.Errorf("SwitchRows(%q) found a switch this snapshot does not have", id)
			}
		}
	}
}

// TestStoreConcurrentReaders publishes snapshots whose every cell holds the
// generation number while readers load and check them: each load must be
// one whole snapshot, and generations never go backwards for a reader.
func TestStoreConcurrentReaders(t *testing.T) {
	const (
		switches    = 64
		columns     = 8
		generations = 300
		readers     = 8
	)
	ids := make([]string, switches)
	cols := make([]string, columns)
	for i := range ids {
		ids[i] = fmt.Sprintf("SW-%03d", i)
	}
	for i := range cols {
		cols[i] = fmt.Sprintf("c%d", i)
	}
	gen := func(g uint64) *Snapshot {
		b := NewBuilder([]string{"switch_id"}, cols, switches)
		for _, id := range ids {
			r := b.AddRow(id)
			for c := range cols {
				b.Set(r, c, UintValue(g))
			}
		}
		s, err := b.Build(t0.Add(time.Duration(g)*time.Second), make([]schema.Metric, columns))
		if err != nil {
			t.Error(err)
		}
		return s
	}

	var store Store
	if store.Load() != nil {
		t.Fatal("a new Store has a snapshot")
	}
	var done atomic.Bool
	var wg sync.WaitGroup
	var loads atomic.Int64
	for range readers {
		wg.Go(func() {
			var last uint64
			for !done.Load() {
				v := store.Load()
				if v == nil {
					continue
				}
				s := v.Single()
				loads.Add(1)
				g, _ := s.Value(0, 0).Uint64()
				if g < last {
					t.Errorf("generation went back from %d to %d", last, g)
					return
				}
				last = g
				if !s.Time().Equal(t0.Add(time.Duration(g) * time.Second)) {
					t.Errorf("generation %d has time %v", g, s.Time())
					return
				}
				for r := range s.NumRows() {
					for c := range columns {
						if v, _ := s.Value(r, c).Uint64(); v != g {
							t.Errorf("torn snapshot: generation %d has %d at row %d column %d", g, v, r, c)
							return
						}
					}
				}
			}
		})
	}
	for g := uint64(1); g <= generations; g++ {
		store.Publish(gen(g))
	}
	done.Store(true)
	wg.Wait()
	if v, _ := store.Load().Single().Value(switches-1, columns-1).Uint64(); v != generations {
		t.Errorf("last published generation reads %d, want %d", v, generations)
	}
	if loads.Load() == 0 {
		t.Error("readers never saw a snapshot")
	}
}
