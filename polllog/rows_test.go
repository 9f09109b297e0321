package polllog

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// rebuild decodes records and rebuilds their snapshots.
func rebuild(t testing.TB, recs []Record) ([]*snapshot.Snapshot, error) {
	t.Helper()
	r := NewRebuilder(nil)
	for _, rec := range recs {
		e, err := Decode(rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Add(e); err != nil {
			return nil, err
		}
	}
	return r.Snapshots()
}

// only is s restricted to the rows of switches, built as the Assembler
// would build it.
func only(t testing.TB, s *snapshot.Snapshot, switches ...string) *snapshot.Snapshot {
	t.Helper()
	out, err := s.OfSwitches(switches)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEncodeSwitchesRoundTrip carries some switches of a switch-level and
// a per-port snapshot through records and back: the same rows, labels,
// exact cells (2^64-1, negative integers, NaN, ±Inf, -0, absent), columns,
// metrics and time; switches the snapshot lacks are left out, nil means
// every switch, and a switch split over several records comes back whole.
func TestEncodeSwitchesRoundTrip(t *testing.T) {
	matrix := matrixSnapshot(t, 20, pollTime)
	ports := ufmSnapshot(t, 6, 64, pollTime)
	enc := &Encoder{Partitions: 1, MaxRecordBytes: MinRecordBytes}
	for _, tc := range []struct {
		name     string
		snap     *snapshot.Snapshot
		switches []string
		want     []string
	}{
		{"some switches", matrix, []string{"sw-0003", "sw-0017", "sw-0099"}, []string{"sw-0003", "sw-0017"}},
		{"every switch", matrix, nil, matrix.Switches()},
		{"ports in chunks", ports, []string{"sw-0005", "sw-0001"}, []string{"sw-0001", "sw-0005"}},
		{"none", matrix, []string{"sw-0099"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := enc.EncodeSwitches(PollID{Source: "view", Seq: 1, PublishTime: pollTime}, tc.snap, tc.switches)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if e, _ := Decode(r.Value); e.Kind != KindData {
					t.Fatalf("a %s record among the rows", e.Kind)
				}
			}
			got, err := rebuild(t, recs)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("%d snapshots from no rows", len(got))
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d snapshots, want 1", len(got))
			}
			if tc.snap == ports && len(recs) <= len(tc.want) {
				t.Fatalf("%d records for %d switches: the per-port rows were meant to need chunks", len(recs), len(tc.want))
			}
			assertSameSnapshot(t, got[0], only(t, tc.snap, tc.want...))
		})
	}
}

// TestRebuilderPolls keeps the polls of an answer apart: a switch-level and
// a per-port part, each its own snapshot, in the order of its first record.
func TestRebuilderPolls(t *testing.T) {
	matrix, ports := matrixSnapshot(t, 3, pollTime), ufmSnapshot(t, 2, 4, pollTime.Add(-10*time.Second))
	enc := &Encoder{Partitions: 1}
	a, err := enc.EncodeSwitches(PollID{Source: "view", Seq: 0, PublishTime: pollTime}, matrix, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.EncodeSwitches(PollID{Source: "view", Seq: 1, PublishTime: pollTime}, ports, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rebuild(t, append(a, b...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d snapshots, want 2", len(got))
	}
	assertSameSnapshot(t, got[0], matrix)
	assertSameSnapshot(t, got[1], ports)
}

// TestRebuilderRejects refuses what would make a wrong snapshot: a missing
// chunk, chunks out of order, a marker among rows, records of one poll that
// disagree, a row sent twice.
func TestRebuilderRejects(t *testing.T) {
	ports := ufmSnapshot(t, 2, 64, pollTime)
	enc := &Encoder{Partitions: 1, MaxRecordBytes: MinRecordBytes}
	id := PollID{Source: "view", Seq: 1, PublishTime: pollTime}
	recs, err := enc.EncodeSwitches(id, ports, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 4 {
		t.Fatalf("%d records: the fixture must split switches into chunks", len(recs))
	}
	other, err := enc.EncodeSwitches(PollID{Source: "view", Seq: 1, PublishTime: pollTime}, ports.WithTime(pollTime.Add(10*time.Second)), []string{"sw-0001"})
	if err != nil {
		t.Fatal(err)
	}
	marker, err := enc.Encode(id, ports)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		recs []Record
	}{
		{"last chunk missing", recs[:len(recs)-1]},
		{"first chunk missing", recs[1:]},
		{"chunks swapped", append([]Record{recs[1], recs[0]}, recs[2:]...)},
		{"end marker", append(slices.Clone(recs), marker[len(marker)-1])},
		{"another time", append(slices.Clone(recs[:1]), other...)},
		{"a switch twice", append(slices.Clone(recs), recs...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := rebuild(t, tc.recs); !errors.Is(err, ErrCorrupt) {
				t.Errorf("got %v, want ErrCorrupt", err)
			}
		})
	}
}
