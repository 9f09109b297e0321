package polllog

import (
	"errors"
	"strings"
	"testing"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

func TestEncodeMarkersInEveryPartition(t *testing.T) {
	// Two switches in a 16-partition topic: most partitions get no data,
	// and still a marker that says so.
	snap := matrixSnapshot(t, 2, pollTime)
	recs, err := (&Encoder{Partitions: 16}).Encode(PollID{Source: "s", Seq: 1, PublishTime: pollTime}, snap)
	if err != nil {
		t.Fatal(err)
	}
	dataIn := map[int32]int{}
	for i, r := range recs {
		e, err := Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Kind {
		case KindData:
			if i >= 2 {
				t.Errorf("data record %d after a marker", i)
			}
			if want := Partition(Key("s", e.Switch), 16); r.Partition != want {
				t.Errorf("switch %s in partition %d, its key hashes to %d", e.Switch, r.Partition, want)
			}
			dataIn[r.Partition]++
		case KindEnd:
			if want := int32(i - 2); e.Partition != want {
				t.Errorf("marker %d for partition %d, want %d", i, e.Partition, want)
			}
			if e.DataRecords != dataIn[e.Partition] {
				t.Errorf("partition %d: marker says %d records, %d written", e.Partition, e.DataRecords, dataIn[e.Partition])
			}
		}
	}
	if len(recs) != 2+16 {
		t.Errorf("%d records, want 2 data and 16 markers", len(recs))
	}
}

// TestEncodeChunksHugeSwitch encodes one switch whose rows need many
// records: each stays under the size, all share the key and partition,
// and together they hold every row once, in order.
func TestEncodeChunksHugeSwitch(t *testing.T) {
	snap := ufmSnapshot(t, 1, 2000, pollTime)
	const maxBytes = 4096
	recs, err := (&Encoder{Partitions: 4, MaxRecordBytes: maxBytes}).Encode(PollID{Source: "s", Seq: 1, PublishTime: pollTime}, snap)
	if err != nil {
		t.Fatal(err)
	}
	rows := 0
	chunks := 0
	for _, r := range recs {
		if len(r.Value) > maxBytes {
			t.Errorf("record of %d bytes, over %d", len(r.Value), maxBytes)
		}
		e, err := Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if e.Kind != KindData {
			continue
		}
		if string(r.Key) != "s/sw-0000" || r.Partition != recs[0].Partition {
			t.Errorf("chunk %d: key %q partition %d", e.Chunk, r.Key, r.Partition)
		}
		if e.Chunk != chunks {
			t.Errorf("chunk %d, want %d", e.Chunk, chunks)
		}
		for i := range e.RowsInRecord {
			labels, _ := e.Row(i)
			if want := snap.RowLabels(rows); labels[1] != want[1] {
				t.Fatalf("row %d is port %s, want %s", rows, labels[1], want[1])
			}
			rows++
		}
		chunks++
		if e.Chunks < 2 {
			t.Errorf("chunk %d of %d", e.Chunk, e.Chunks)
		}
	}
	if rows != snap.NumRows() || chunks < 10 {
		t.Errorf("%d rows in %d chunks, want %d rows in many", rows, chunks, snap.NumRows())
	}
}

func TestEncodeRejects(t *testing.T) {
	wide := make([]string, 400)
	for i := range wide {
		wide[i] = strings.Repeat("c", 10) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	tests := []struct {
		name string
		enc  Encoder
		id   PollID
		snap *snapshot.Snapshot
		want string
	}{
		{"no partitions", Encoder{}, PollID{Source: "s"}, matrixSnapshot(t, 1, pollTime), "0 partitions"},
		{"no source", Encoder{Partitions: 1}, PollID{}, matrixSnapshot(t, 1, pollTime), "no source"},
		{"tiny records", Encoder{Partitions: 1, MaxRecordBytes: 100}, PollID{Source: "s"}, matrixSnapshot(t, 1, pollTime), "below the minimum"},
		{"row too large", Encoder{Partitions: 1, MaxRecordBytes: MinRecordBytes}, PollID{Source: "s"},
			buildSnapshot(t, []string{snapshot.SwitchLabel}, wide, 1, 1, pollTime), ErrRowTooLarge.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.enc.Encode(tt.id, tt.snap)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Encode = %v, want %q", err, tt.want)
			}
			if tt.want == ErrRowTooLarge.Error() && !errors.Is(err, ErrRowTooLarge) {
				t.Errorf("%v is not ErrRowTooLarge", err)
			}
		})
	}
}
