package polllog

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

func TestDecodeRoundTrip(t *testing.T) {
	snap := ufmSnapshot(t, 3, 4, pollTime)
	id := PollID{Source: "ufm-east", Seq: 1<<40 + 7, PublishTime: pollTime.Add(1500 * time.Millisecond)}
	recs, err := (&Encoder{Partitions: 5}).Encode(id, snap)
	if err != nil {
		t.Fatal(err)
	}
	data, markers := 0, 0
	for _, r := range recs {
		e, err := Decode(r.Value)
		if err != nil {
			t.Fatalf("record %q: %v", r.Key, err)
		}
		if e.PollID != id || !e.SnapshotTime.Equal(pollTime) || e.Partitions != 5 {
			t.Errorf("header %+v %v %d, want %+v %v 5", e.PollID, e.SnapshotTime, e.Partitions, id, pollTime)
		}
		if !slices.Equal(e.LabelNames, snap.LabelNames()) || !slices.Equal(e.Columns, snap.Columns()) {
			t.Errorf("names %v %v", e.LabelNames, e.Columns)
		}
		switch e.Kind {
		case KindData:
			data++
			if string(r.Key) != "ufm-east/"+e.Switch {
				t.Errorf("key %q for switch %q", r.Key, e.Switch)
			}
			start, end, ok := snap.SwitchRows(e.Switch)
			if !ok || e.RowsInRecord != end-start {
				t.Fatalf("switch %q: %d rows, want %d", e.Switch, e.RowsInRecord, end-start)
			}
			for i := range e.RowsInRecord {
				labels, values := e.Row(i)
				if !slices.Equal(labels, snap.RowLabels(start+i)) {
					t.Errorf("row labels %v, want %v", labels, snap.RowLabels(start+i))
				}
				for c, v := range values {
					if want := snap.Value(start+i, c); v != want {
						t.Errorf("%s row %d col %d: %v kind %v, want %v kind %v", e.Switch, i, c, v.Float64(), v.Kind(), want.Float64(), want.Kind())
					}
				}
			}
		case KindEnd:
			if e.Partition != r.Partition {
				t.Errorf("marker for partition %d written to %d", e.Partition, r.Partition)
			}
			markers++
		}
	}
	if data != 3 || markers != 5 {
		t.Errorf("%d data records and %d markers, want 3 and 5", data, markers)
	}
}

func TestDecodeCheckpoint(t *testing.T) {
	id := PollID{Source: "s", Seq: 42, PublishTime: pollTime}
	e, err := Decode(EncodeCheckpoint(id, pollTime.Add(-time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if e.Kind != KindCheckpoint || e.PollID != id || !e.SnapshotTime.Equal(pollTime.Add(-time.Second)) {
		t.Errorf("got %+v", e)
	}
}

// resum recomputes a record's checksum after a test changed its payload,
// so that the decoder's other checks are reached.
func resum(v []byte) []byte {
	binary.BigEndian.PutUint32(v[offCRC:], crc32.Checksum(v[headerLen:], castagnoli))
	return v
}

func TestDecodeRejects(t *testing.T) {
	recs, err := (&Encoder{Partitions: 2}).Encode(PollID{Source: "s", Seq: 1, PublishTime: pollTime}, matrixSnapshot(t, 2, pollTime))
	if err != nil {
		t.Fatal(err)
	}
	data := recs[0].Value
	marker := recs[len(recs)-1].Value
	edit := func(v []byte, fn func([]byte) []byte) []byte { return fn(slices.Clone(v)) }
	tests := []struct {
		name  string
		value []byte
		want  error
		msg   string
	}{
		{"empty", nil, ErrCorrupt, "not a poll-log record"},
		{"other magic", edit(data, func(v []byte) []byte { v[0] = 'X'; return v }), ErrCorrupt, "not a poll-log record"},
		{"next version", edit(data, func(v []byte) []byte { v[offVersion] = Version + 1; return v }), ErrUnknownVersion, "unknown format version 2"},
		{"version 0", edit(data, func(v []byte) []byte { v[offVersion] = 0; return v }), ErrUnknownVersion, "this reader knows 1"},
		{"flipped bit", edit(data, func(v []byte) []byte { v[len(v)-1] ^= 1; return v }), ErrCorrupt, "checksum"},
		{"truncated", data[:len(data)-3], ErrCorrupt, "checksum"},
		{"truncated, checksum recomputed", edit(data[:len(data)-3], resum), ErrCorrupt, "data record"},
		{"trailing bytes", edit(append(slices.Clone(marker), 0), resum), ErrCorrupt, "1 bytes after the end record"},
		{"unknown kind", edit(data, func(v []byte) []byte { v[offKind] = 9; return resum(v) }), ErrCorrupt, "unknown record kind 9"},
		{"header only", edit(data[:headerLen], resum), ErrCorrupt, "truncated varint"},
		{"marker for a partition past the poll's", edit(marker, func(v []byte) []byte {
			// The marker ends with partition, count: both 1-byte varints.
			v[len(v)-2] = 7
			return resum(v)
		}), ErrCorrupt, "partition 7 of a 2-partition poll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Decode(tt.value)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Decode = %v, %v; want %v containing %q", e, err, tt.want, tt.msg)
			}
		})
	}
}

func TestDecodeBadCell(t *testing.T) {
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, []string{"a"}, 1)
	b.AddRowValues([]string{"sw"}, []snapshot.Value{snapshot.UintValue(4)})
	s, err := b.Build(pollTime, make([]schema.Metric, 1))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := (&Encoder{Partitions: 1}).Encode(PollID{Source: "s", Seq: 1, PublishTime: pollTime}, s)
	if err != nil {
		t.Fatal(err)
	}
	// The only cell is the record's last two bytes: kind, uvarint 4.
	v := slices.Clone(recs[0].Value)
	v[len(v)-2] = 7
	if _, err := Decode(resum(v)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "unknown cell kind 7") {
		t.Errorf("Decode = %v", err)
	}
	v[len(v)-2] = cellInt // zig-zag 4 is 2: a non-negative number stored as a negative one
	if _, err := Decode(resum(v)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "non-negative integer 2") {
		t.Errorf("Decode = %v", err)
	}
}

// TestMurmur2 checks the hash against the test vectors of Kafka's own
// UtilsTest.testMurmur2, so that partitions match Kafka's partitioner.
func TestMurmur2(t *testing.T) {
	for in, want := range map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
		"abc": 479470107,
	} {
		if got := int32(murmur2([]byte(in))); got != want {
			t.Errorf("murmur2(%q) = %d, want %d", in, got, want)
		}
	}
}
