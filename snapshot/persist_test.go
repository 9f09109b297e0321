package snapshot

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
)

func persistFixture(t *testing.T) *Snapshot {
	t.Helper()
	cols := []string{"Rx_Bytes", "Temperature_C", "Fan_Speed_RPM"}
	b := NewBuilder([]string{SwitchLabel, PortLabel}, cols, 3)
	r := b.AddRow("SW-02", "1")
	b.Set(r, 0, UintValue(math.MaxUint64))
	b.Set(r, 1, FloatValue(math.NaN()))
	r = b.AddRow("SW-01", "10")
	b.Set(r, 0, IntValue(-3))
	b.Set(r, 2, FloatValue(1200.5))
	metrics, _ := schema.Default().Resolve(Subsystem(b.labelNames), cols)
	s, err := b.Build(time.Date(2026, 11, 25, 19, 30, 0, 123e6, time.UTC), metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStateFileRoundTrip(t *testing.T) {
	want := persistFixture(t)
	path := filepath.Join(t.TempDir(), "state")
	if err := WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path, schema.Default())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time().Equal(want.Time()) || got.TimeText() != want.TimeText() {
		t.Errorf("time %v, want the original %v", got.Time(), want.Time())
	}
	if !slices.Equal(got.LabelNames(), want.LabelNames()) || !slices.Equal(got.Columns(), want.Columns()) || got.NumRows() != want.NumRows() {
		t.Fatalf("shape differs: %v %v %d", got.LabelNames(), got.Columns(), got.NumRows())
	}
	for row := range want.NumRows() {
		if !slices.Equal(got.RowLabels(row), want.RowLabels(row)) {
			t.Errorf("row %d labels %v, want %v", row, got.RowLabels(row), want.RowLabels(row))
		}
		for col := range want.Columns() {
			if g, w := got.Value(row, col), want.Value(row, col); g != w {
				t.Errorf("row %d col %d: %v, want %v", row, col, g, w)
			}
		}
	}
	for i, m := range got.Metrics() {
		if m.Name != want.Metrics()[i].Name {
			t.Errorf("column %d exported as %s, want %s", i, m.Name, want.Metrics()[i].Name)
		}
	}
}

func TestStateFileDamage(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := WriteFile(path, persistFixture(t)); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	flipped := slices.Clone(good)
	flipped[len(flipped)/2] ^= 0xff
	tests := map[string][]byte{
		"truncated": good[:len(good)-7],
		"bit flip":  flipped,
		"empty":     nil,
		"other":     []byte("switch_id,Rx_Bytes\nSW-01,1\n"),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if s, err := ReadFile(p, schema.Default()); err == nil {
				t.Fatalf("damaged file read as a snapshot of %d rows", s.NumRows())
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "absent"), schema.Default()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want not-exist", err)
	}
}

func TestStateFileReplacedAtomically(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for range 3 {
		if err := WriteFile(path, persistFixture(t)); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the state directory, want only the state file (no temporaries left)", len(entries))
	}
}
