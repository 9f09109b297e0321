package polllog

import (
	"errors"
	"slices"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode and to an Assembler: any
// input gives an error or a record whose parts are consistent, never a
// panic. The seed corpus in testdata/fuzz/FuzzDecode holds records of
// every kind, valid and damaged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("FTPL\x01\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, value []byte) {
		decode(t, value)
		// The checksum stops nearly every mutation at the door; with it
		// recomputed, the mutations reach the payload's parser.
		if len(value) >= headerLen {
			decode(t, resum(slices.Clone(value)))
		}
	})
}

func decode(t *testing.T, value []byte) {
	t.Helper()
	e, err := Decode(value)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownVersion) {
			t.Fatalf("error %v is neither corrupt nor unknown version", err)
		}
		if e != nil {
			t.Fatal("an entry with an error")
		}
	} else {
		checkEntry(t, e)
	}
	a := NewAssembler(AssemblerConfig{})
	for p := range int32(2) {
		polls, _ := a.Add(p, 0, value)
		for _, poll := range polls {
			if poll.Snapshot == nil {
				t.Fatal("a poll without a snapshot")
			}
		}
	}
}

func checkEntry(t *testing.T, e *Entry) {
	t.Helper()
	if e.Source == "" {
		t.Fatal("no source")
	}
	switch e.Kind {
	case KindData:
		nl, nc := len(e.LabelNames), len(e.Columns)
		if nl == 0 || e.RowsInRecord == 0 || len(e.Labels) != e.RowsInRecord*nl || len(e.Values) != e.RowsInRecord*nc || e.Chunk >= e.Chunks {
			t.Fatalf("inconsistent data entry: %d labels, %d columns, %d rows, %d label values, %d values, chunk %d of %d",
				nl, nc, e.RowsInRecord, len(e.Labels), len(e.Values), e.Chunk, e.Chunks)
		}
		for i := range e.RowsInRecord {
			if labels, _ := e.Row(i); labels[0] != e.Switch {
				t.Fatalf("row %d of switch %q has switch %q", i, e.Switch, labels[0])
			}
		}
	case KindEnd:
		if int(e.Partition) >= e.Partitions || e.Partition < 0 {
			t.Fatalf("marker for partition %d of %d", e.Partition, e.Partitions)
		}
	case KindCheckpoint:
	default:
		t.Fatalf("kind %v", e.Kind)
	}
}
