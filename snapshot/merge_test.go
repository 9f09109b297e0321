package snapshot

import (
	"slices"
	"testing"
)

func TestMergeSourcesUnionsLabelsAndColumns(t *testing.T) {
	ufm := mustBuild(t, []string{"switch_id", "port", "node_guid"}, []string{"a", "b"}, []row{
		{[]string{"SW-02", "1", "0x2"}, []Value{UintValue(1), UintValue(2)}},
		{[]string{"SW-02", "10", "0x2"}, []Value{UintValue(3), {}}},
	}, nil)
	matrix := mustBuild(t, []string{"switch_id", "port"}, []string{"b", "c"}, []row{
		{[]string{"SW-01", "2"}, []Value{UintValue(4), UintValue(5)}},
		{[]string{"SW-02", "9"}, []Value{UintValue(6), {}}},
	}, nil)
	merged, dropped, err := MergeSources([]*Snapshot{ufm, matrix}, nil)
	if err != nil || dropped != 0 {
		t.Fatalf("MergeSources: dropped %d, %v", dropped, err)
	}
	if want := []string{"switch_id", "port", "node_guid"}; !slices.Equal(merged.LabelNames(), want) {
		t.Errorf("labels %v, want %v", merged.LabelNames(), want)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(merged.Columns(), want) {
		t.Errorf("columns %v, want %v", merged.Columns(), want)
	}
	want := []string{
		"[SW-01 2 ] : _ 4 5",
		"[SW-02 1 0x2] : 1 2 _",
		"[SW-02 9 ] : _ 6 _",
		"[SW-02 10 0x2] : 3 _ _",
	}
	if got := dump(merged); !slices.Equal(got, want) {
		t.Errorf("merged rows\n%q\nwant\n%q", got, want)
	}
	if start, end, _ := merged.SwitchRows("SW-02"); start != 1 || end != 4 {
		t.Errorf("SW-02 rows [%d,%d), want [1,4)", start, end)
	}
}

func TestMergeSourcesFirstSourceOwnsARow(t *testing.T) {
	first := mustBuild(t, []string{"switch_id"}, []string{"a"}, []row{
		{[]string{"SW-01"}, []Value{UintValue(1)}},
		{[]string{"SW-03"}, []Value{UintValue(3)}},
	}, nil)
	second := mustBuild(t, []string{"switch_id"}, []string{"a"}, []row{
		{[]string{"SW-01"}, []Value{UintValue(100)}},
		{[]string{"SW-02"}, []Value{UintValue(2)}},
	}, nil)
	merged, dropped, err := MergeSources([]*Snapshot{first, second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 1 {
		t.Errorf("dropped %d rows, want 1", dropped)
	}
	want := []string{"[SW-01] : 1", "[SW-02] : 2", "[SW-03] : 3"}
	if got := dump(merged); !slices.Equal(got, want) {
		t.Errorf("merged rows %q, want %q", got, want)
	}
}

func TestMergeSourcesSharesIndexOfSteadyFabric(t *testing.T) {
	rows := func(v uint64) []row {
		return []row{{[]string{"SW-01"}, []Value{UintValue(v)}}}
	}
	other := mustBuild(t, []string{"switch_id"}, []string{"a"}, []row{{[]string{"SW-02"}, []Value{UintValue(9)}}}, nil)
	first, _, _ := MergeSources([]*Snapshot{mustBuild(t, []string{"switch_id"}, []string{"a"}, rows(1), nil), other}, nil)
	second, _, _ := MergeSources([]*Snapshot{mustBuild(t, []string{"switch_id"}, []string{"a"}, rows(2), nil), other}, first)
	if !second.SameRows(first) {
		t.Error("a merge with the same rows does not share the previous merge's rows")
	}
	if v, _ := second.Value(0, 0).Uint64(); v != 2 {
		t.Errorf("value %d, want the new 2", v)
	}
}

func TestWithLabels(t *testing.T) {
	s := mustBuild(t, []string{"switch_id", "port"}, []string{"a"}, []row{
		{[]string{"SW-01", "1"}, []Value{UintValue(1)}},
		{[]string{"SW-01", "2"}, []Value{UintValue(2)}},
	}, nil)
	east, err := s.WithLabels([]string{"fabric", "site"}, []string{"east", "ams"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"switch_id", "port", "fabric", "site"}; !slices.Equal(east.LabelNames(), want) {
		t.Errorf("labels %v, want %v", east.LabelNames(), want)
	}
	if got, want := dump(east), []string{"[SW-01 1 east ams] : 1", "[SW-01 2 east ams] : 2"}; !slices.Equal(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
	if !slices.Equal(s.LabelNames(), []string{"switch_id", "port"}) || s.NumRows() != 2 {
		t.Error("WithLabels changed the snapshot it was given")
	}

	next := mustBuild(t, []string{"switch_id", "port"}, []string{"a"}, []row{
		{[]string{"SW-01", "1"}, []Value{UintValue(10)}},
		{[]string{"SW-01", "2"}, []Value{UintValue(20)}},
	}, s)
	east2, err := next.WithLabels([]string{"fabric", "site"}, []string{"east", "ams"}, s, east)
	if err != nil {
		t.Fatal(err)
	}
	if !east2.SameRows(east) {
		t.Error("labelled snapshots of the same rows do not share rows")
	}
	if v, _ := east2.Value(1, 0).Uint64(); v != 20 {
		t.Errorf("value %d, want the new 20", v)
	}

	if _, err := s.WithLabels([]string{"port"}, []string{"x"}, nil, nil); err == nil {
		t.Error("WithLabels accepted a label the rows already have")
	}
}

func TestCompareNumbers(t *testing.T) {
	ordered := []string{"0", "01", "1", "2", "9", "010", "10", "64", "100", "18446744073709551616", "a", "b1"}
	for i := range ordered {
		for j := range ordered {
			got := compareLabel(1, ordered[i], ordered[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			// Numbers and words are not mixed in one column; only check
			// pairs of the same kind, and a word against itself.
			if isDigits(ordered[i]) != isDigits(ordered[j]) {
				continue
			}
			if got != want {
				t.Errorf("compareLabel(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if compareLabel(0, "SW-10", "SW-9") >= 0 || compareLabel(0, "10", "9") >= 0 {
		t.Error("switch ids must compare as strings")
	}
}
