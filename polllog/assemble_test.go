package polllog

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

func TestAssembleRoundTrip(t *testing.T) {
	for name, snap := range map[string]*snapshot.Snapshot{
		"switch matrix":    matrixSnapshot(t, 50, pollTime),
		"per-port UFM":     ufmSnapshot(t, 20, 64, pollTime),
		"one switch":       matrixSnapshot(t, 1, pollTime),
		"more partitions ": ufmSnapshot(t, 3, 2, pollTime),
	} {
		t.Run(name, func(t *testing.T) {
			log := newTestLog(16)
			log.publish(t, "src", 1, snap)
			polls, rejected := log.readAll(NewAssembler(AssemblerConfig{}))
			if len(rejected) > 0 || len(polls) != 1 {
				t.Fatalf("%d polls, rejected %v", len(polls), rejected)
			}
			p := polls[0]
			if p.Source != "src" || p.Seq != 1 || !p.PublishTime.Equal(pollTime.Add(time.Second)) || p.Partitions != 16 || len(p.Offsets) != 16 {
				t.Errorf("poll %+v", p)
			}
			assertSameSnapshot(t, p.Snapshot, snap)
		})
	}
}

// TestAssembleChunkedSwitch rebuilds a switch split over many records.
func TestAssembleChunkedSwitch(t *testing.T) {
	snap := ufmSnapshot(t, 2, 1500, pollTime)
	recs, err := (&Encoder{Partitions: 3, MaxRecordBytes: 2048}).Encode(PollID{Source: "s", Seq: 1, PublishTime: pollTime}, snap)
	if err != nil {
		t.Fatal(err)
	}
	log := newTestLog(3)
	log.append(recs)
	polls, rejected := log.readAll(NewAssembler(AssemblerConfig{}))
	if len(rejected) > 0 || len(polls) != 1 {
		t.Fatalf("%d polls, rejected %v", len(polls), rejected)
	}
	if polls[0].Records < 20 {
		t.Errorf("%d records: the switch was not chunked", polls[0].Records)
	}
	assertSameSnapshot(t, polls[0].Snapshot, snap)
}

// TestAssembleInterleavings reads the partitions of several polls of two
// sources in random interleavings, as a consumer fetching partitions from
// different brokers does: every poll comes out whole, in order per source.
func TestAssembleInterleavings(t *testing.T) {
	const polls = 5
	log := newTestLog(8)
	var want [2][]*snapshot.Snapshot
	for seq := range uint64(polls) {
		at := pollTime.Add(time.Duration(seq) * time.Minute)
		a, b := matrixSnapshot(t, 30, at), ufmSnapshot(t, 10, 4, at)
		log.publish(t, "a", seq+1, a)
		log.publish(t, "b", seq+1, b)
		want[0], want[1] = append(want[0], a), append(want[1], b)
	}
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		asm := NewAssembler(AssemblerConfig{})
		got := map[string][]*Poll{}
		next := make([]int, len(log.parts))
		for {
			var open []int
			for p := range log.parts {
				if next[p] < len(log.parts[p]) {
					open = append(open, p)
				}
			}
			if len(open) == 0 {
				break
			}
			p := open[rnd.IntN(len(open))]
			for n := 1 + rnd.IntN(7); n > 0 && next[p] < len(log.parts[p]); n-- {
				ps, rs := asm.Add(int32(p), int64(next[p]), log.parts[p][next[p]])
				if len(rs) > 0 {
					t.Fatalf("seed %d: rejected %v", seed, rs)
				}
				for _, poll := range ps {
					got[poll.Source] = append(got[poll.Source], poll)
				}
				next[p]++
			}
		}
		for i, src := range []string{"a", "b"} {
			if len(got[src]) != polls {
				t.Fatalf("seed %d: source %s: %d polls, want %d", seed, src, len(got[src]), polls)
			}
			for j, p := range got[src] {
				if p.Seq != uint64(j+1) {
					t.Fatalf("seed %d: source %s: poll %d has seq %d", seed, src, j, p.Seq)
				}
				assertSameSnapshot(t, p.Snapshot, want[i][j])
			}
		}
		if n, bytes := asm.Pending(); n != 0 || bytes != 0 {
			t.Errorf("seed %d: %d polls (%d bytes) still pending", seed, n, bytes)
		}
	}
}

// TestAssemblePartitionSubset reads only some partitions, as a reader of
// a partitioned fabric will: the poll completes with their markers and
// holds exactly their switches.
func TestAssemblePartitionSubset(t *testing.T) {
	snap := matrixSnapshot(t, 40, pollTime)
	log := newTestLog(4)
	recs := log.publish(t, "s", 1, snap)
	owned := []int32{1, 3}
	polls, rejected := log.readAll(NewAssembler(AssemblerConfig{Partitions: owned}))
	if len(rejected) > 0 || len(polls) != 1 {
		t.Fatalf("%d polls, rejected %v", len(polls), rejected)
	}
	var want []string
	for _, r := range recs {
		if e, _ := Decode(r.Value); e.Kind == KindData && slices.Contains(owned, r.Partition) {
			want = append(want, e.Switch)
		}
	}
	slices.Sort(want)
	if got := polls[0].Snapshot.Switches(); !slices.Equal(got, want) || len(want) == 0 || len(want) == 40 {
		t.Errorf("switches %v, want %v", got, want)
	}
	if len(polls[0].Offsets) != 2 {
		t.Errorf("offsets %v, want partitions 1 and 3", polls[0].Offsets)
	}
}

// rejectionLog has a good first poll of source s, so that later drops
// are incomplete rather than partial_start, and gives the next polls'
// records for a test to tamper with.
func rejectionLog(t *testing.T) (*testLog, func(seq uint64) []Record) {
	t.Helper()
	log := newTestLog(4)
	log.publish(t, "s", 1, matrixSnapshot(t, 12, pollTime))
	next := func(seq uint64) []Record {
		recs, err := (&Encoder{Partitions: 4}).Encode(PollID{Source: "s", Seq: seq, PublishTime: pollTime}, matrixSnapshot(t, 12, pollTime.Add(time.Duration(seq)*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	return log, next
}

// firstData returns the index of the first data record of recs.
func firstData(t *testing.T, recs []Record) int {
	for i, r := range recs {
		if e, err := Decode(r.Value); err == nil && e.Kind == KindData {
			return i
		}
	}
	t.Fatal("no data record")
	return 0
}

func TestAssembleRejects(t *testing.T) {
	tests := []struct {
		name string
		// tamper writes polls 2 (and 3) to the log, damaged.
		tamper  func(t *testing.T, log *testLog, next func(uint64) []Record)
		want    []Reason // in any order
		applied []uint64
	}{
		{"unknown version", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			i := firstData(t, recs)
			recs[i].Value = slices.Clone(recs[i].Value)
			recs[i].Value[offVersion] = 2
			log.append(recs)
			log.append(next(3))
		}, []Reason{ReasonUnknownVersion, ReasonIncomplete}, []uint64{1, 3}},
		{"bad checksum", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			i := firstData(t, recs)
			recs[i].Value = slices.Clone(recs[i].Value)
			recs[i].Value[len(recs[i].Value)-1] ^= 0x40
			log.append(recs)
		}, []Reason{ReasonCorrupt, ReasonIncomplete}, []uint64{1}},
		{"truncated", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			i := firstData(t, recs)
			recs[i].Value = recs[i].Value[:len(recs[i].Value)/2]
			log.append(recs)
		}, []Reason{ReasonCorrupt, ReasonIncomplete}, []uint64{1}},
		{"a record missing", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			log.append(slices.Delete(recs, 0, 1))
		}, []Reason{ReasonIncomplete}, []uint64{1}},
		{"a marker missing, superseded by the next poll", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			log.append(recs[:len(recs)-1])
			log.append(next(3))
		}, []Reason{ReasonIncomplete}, []uint64{1, 3}},
		{"a data record after its marker", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			i := firstData(t, recs)
			d := recs[i]
			log.append(slices.Delete(recs, i, i+1))
			// Re-encode the marker's partition count would be needed to
			// make this consistent; appending after the marker is enough.
			log.append([]Record{d})
		}, []Reason{ReasonIncomplete}, []uint64{1}},
		{"a switch in the wrong partition", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			recs := next(2)
			i := firstData(t, recs)
			recs[i].Partition = (recs[i].Partition + 1) % 4
			log.append(recs)
		}, []Reason{ReasonCorrupt, ReasonIncomplete}, []uint64{1}},
		{"duplicate", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			log.append(next(2))
			log.append(next(2))
			log.append(next(3))
		}, []Reason{ReasonDuplicate}, []uint64{1, 2, 3}},
		{"out of order", func(t *testing.T, log *testLog, next func(uint64) []Record) {
			log.append(next(3))
			log.append(next(2))
		}, []Reason{ReasonOutOfOrder}, []uint64{1, 3}},
	}
	// Two ways of reading: in lock step, one record per partition in turn,
	// as a consumer caught up on every partition does, and one partition
	// after the other, as a replay that fetches them at different speeds.
	lockStep := func(log *testLog, a *Assembler) (polls []*Poll, rejected []Rejection) {
		for off := 0; ; off++ {
			more := false
			for p, recs := range log.parts {
				if off < len(recs) {
					more = true
					ps, rs := a.Add(int32(p), int64(off), recs[off])
					polls, rejected = append(polls, ps...), append(rejected, rs...)
				}
			}
			if !more {
				return polls, rejected
			}
		}
	}
	readAll := func(log *testLog, a *Assembler) ([]*Poll, []Rejection) { return log.readAll(a) }
	for _, tt := range tests {
		for order, read := range map[string]func(*testLog, *Assembler) ([]*Poll, []Rejection){"lock step": lockStep, "partition by partition": readAll} {
			t.Run(tt.name+"/"+order, func(t *testing.T) {
				log, next := rejectionLog(t)
				tt.tamper(t, log, next)
				a := NewAssembler(AssemblerConfig{})
				polls, rejected := read(log, a)
				got, want := reasons(rejected), slices.Clone(tt.want)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("rejected %v (%v), want %v", got, rejected, tt.want)
				}
				var applied []uint64
				for _, p := range polls {
					applied = append(applied, p.Seq)
				}
				if !slices.Equal(applied, tt.applied) {
					t.Errorf("applied %v, want %v", applied, tt.applied)
				}
				counts := a.Rejected()
				for _, r := range tt.want {
					if counts[r] == 0 {
						t.Errorf("reason %s not counted: %v", r, counts)
					}
				}
				if n, _ := a.Pending(); n != 0 {
					t.Errorf("%d polls left pending", n)
				}
			})
		}
	}
}

// TestAssemblePartialStart starts reading in the middle of a poll, as a
// reader whose replay window cuts the log does.
func TestAssemblePartialStart(t *testing.T) {
	log := newTestLog(4)
	first := log.publish(t, "s", 1, matrixSnapshot(t, 12, pollTime))
	log.publish(t, "s", 2, matrixSnapshot(t, 12, pollTime.Add(time.Minute)))
	// Drop the first data record of poll 1 from its partition, as if the
	// reader started right after it.
	p := first[firstData(t, first)].Partition
	log.parts[p] = log.parts[p][1:]
	polls, rejected := log.readAll(NewAssembler(AssemblerConfig{}))
	if got := reasons(rejected); !slices.Equal(got, []Reason{ReasonPartialStart}) {
		t.Errorf("rejected %v", rejected)
	}
	if len(polls) != 1 || polls[0].Seq != 2 {
		t.Errorf("applied %d polls", len(polls))
	}
}

// TestAssemblePendingCaps holds polls that cannot complete yet (one
// partition lags) and checks that the caps drop the oldest.
func TestAssemblePendingCaps(t *testing.T) {
	log := newTestLog(4)
	for seq := range uint64(4) {
		log.publish(t, "s", seq+1, matrixSnapshot(t, 12, pollTime.Add(time.Duration(seq)*time.Minute)))
	}
	feed := func(a *Assembler, parts ...int) (polls []*Poll, rejected []Rejection) {
		for _, p := range parts {
			for off, v := range log.parts[p] {
				ps, rs := a.Add(int32(p), int64(off), v)
				polls, rejected = append(polls, ps...), append(rejected, rs...)
			}
		}
		return polls, rejected
	}
	t.Run("polls", func(t *testing.T) {
		a := NewAssembler(AssemblerConfig{MaxPendingPolls: 2})
		_, rejected := feed(a, 1, 2, 3)
		if n, _ := a.Pending(); n != 2 || len(rejected) != 2 {
			t.Fatalf("%d pending, rejected %v; want 2 and polls 1, 2 dropped", n, rejected)
		}
		polls, rejected := feed(a, 0)
		if len(rejected) != 0 || len(polls) != 2 || polls[0].Seq != 3 || polls[1].Seq != 4 {
			t.Errorf("then applied %d polls, rejected %v; want 3 and 4", len(polls), rejected)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		var partBytes int
		for _, v := range log.parts[1] {
			partBytes += len(v)
		}
		a := NewAssembler(AssemblerConfig{MaxPendingBytes: partBytes})
		feed(a, 1)
		if n, bytes := a.Pending(); n != 4 || bytes != partBytes {
			t.Fatalf("%d pending of %d bytes, want 4 of %d", n, bytes, partBytes)
		}
		_, rejected := feed(a, 2)
		if _, bytes := a.Pending(); bytes > partBytes || len(rejected) == 0 {
			t.Errorf("%d bytes pending over the cap of %d, rejected %v", bytes, partBytes, rejected)
		}
	})
	t.Run("age", func(t *testing.T) {
		now := pollTime
		a := NewAssembler(AssemblerConfig{MaxPendingAge: time.Minute, Now: func() time.Time { return now }})
		feed(a, 1, 2)
		if rejected := a.Expire(); len(rejected) != 0 {
			t.Fatalf("expired early: %v", rejected)
		}
		now = now.Add(2 * time.Minute)
		if rejected := a.Expire(); len(rejected) != 4 {
			t.Errorf("expired %v, want all 4 polls", rejected)
		}
		if n, bytes := a.Pending(); n != 0 || bytes != 0 {
			t.Errorf("%d polls of %d bytes still pending", n, bytes)
		}
	})
}

// TestAssembleAhead reports a partition that has ended more polls than the
// others have, so that a reader pauses it.
func TestAssembleAhead(t *testing.T) {
	log := newTestLog(4)
	for seq := range uint64(3) {
		log.publish(t, "s", seq+1, matrixSnapshot(t, 12, pollTime.Add(time.Duration(seq)*time.Minute)))
	}
	a := NewAssembler(AssemblerConfig{MaxAhead: 2})
	ends := 0
	for off, v := range log.parts[2] {
		a.Add(2, int64(off), v)
		if e, _ := Decode(v); e.Kind == KindEnd {
			ends++
		}
		if got := a.Ahead(); (ends >= 2) != slices.Equal(got, []int32{2}) {
			t.Fatalf("after %d markers of partition 2: ahead %v", ends, got)
		}
	}
	// The other partitions catch up: nothing is ahead any more.
	for _, p := range []int{0, 1, 3} {
		for off, v := range log.parts[p] {
			a.Add(int32(p), int64(off), v)
		}
	}
	if got := a.Ahead(); len(got) != 0 {
		t.Errorf("ahead %v after every partition was read", got)
	}
}

// TestAssembleSharesSteadyRows applies polls of one fabric with new values
// each time: every poll after the first shares the previous snapshot's
// rows (labels and index), as the ingest parser's snapshots do, and holds
// the new values.
func TestAssembleSharesSteadyRows(t *testing.T) {
	log := newTestLog(4)
	var want []*snapshot.Snapshot
	for seq := range uint64(3) {
		s := valuedSnapshot(t, ufmRows(6, 5, nil), int(seq), pollTime.Add(time.Duration(seq)*time.Minute))
		log.publish(t, "s", seq+1, s)
		want = append(want, s)
	}
	polls, rejected := log.readAll(NewAssembler(AssemblerConfig{}))
	if len(polls) != 3 || len(rejected) > 0 {
		t.Fatalf("%d polls, rejected %v", len(polls), rejected)
	}
	for i, p := range polls {
		assertSameSnapshot(t, p.Snapshot, want[i])
		if i > 0 && !p.Snapshot.SameRows(polls[i-1].Snapshot) {
			t.Errorf("poll %d does not share the rows of poll %d", p.Seq, polls[i-1].Seq)
		}
	}
}

// TestAssembleChangedRows changes the rows between two polls in the ways
// a fabric changes: the second poll must hold its own labels, not the
// first's at the same place, and share nothing when its rows differ; a
// third poll like the first is whole again.
func TestAssembleChangedRows(t *testing.T) {
	base := ufmRows(6, 5, nil)
	tests := map[string][][]string{
		"a switch added in the middle": ufmRows(6, 5, func(rows [][]string) [][]string {
			return slices.Insert(rows, 10, []string{"sw-0001a", "1", "0x00000000000000aa"})
		}),
		"a switch removed": ufmRows(6, 5, func(rows [][]string) [][]string { return slices.Delete(rows, 5, 10) }),
		"a port added":     ufmRows(6, 5, func(rows [][]string) [][]string { return slices.Insert(rows, 7, []string{"sw-0001", "5a", rows[6][2]}) }),
		"a port removed":   ufmRows(6, 5, func(rows [][]string) [][]string { return slices.Delete(rows, 7, 8) }),
		"a GUID changed": ufmRows(6, 5, func(rows [][]string) [][]string {
			for _, r := range rows[15:20] {
				r[2] = "0x00000000000000ff"
			}
			return rows
		}),
		"a switch renamed, same rows": ufmRows(6, 5, func(rows [][]string) [][]string {
			for _, r := range rows[25:30] {
				r[0] = "sw-0005b"
			}
			return rows
		}),
		"every label the same length, other values": ufmRows(6, 5, func(rows [][]string) [][]string {
			for _, r := range rows {
				r[2] = strings.Replace(r[2], "0x", "0y", 1)
			}
			return rows
		}),
	}
	for name, changed := range tests {
		t.Run(name, func(t *testing.T) {
			log := newTestLog(4)
			want := []*snapshot.Snapshot{
				valuedSnapshot(t, base, 0, pollTime),
				valuedSnapshot(t, changed, 1, pollTime.Add(time.Minute)),
				valuedSnapshot(t, base, 2, pollTime.Add(2*time.Minute)),
			}
			for i, s := range want {
				log.publish(t, "s", uint64(i+1), s)
			}
			polls, rejected := log.readAll(NewAssembler(AssemblerConfig{}))
			if len(polls) != 3 || len(rejected) > 0 {
				t.Fatalf("%d polls, rejected %v", len(polls), rejected)
			}
			for i, p := range polls {
				assertSameSnapshot(t, p.Snapshot, want[i])
			}
			if polls[1].Snapshot.SameRows(polls[0].Snapshot) || polls[2].Snapshot.SameRows(polls[1].Snapshot) {
				t.Error("a poll with other rows shares the previous poll's")
			}
		})
	}
}

// ufmRows returns the label values of a per-port fabric, switch, port and
// GUID, sorted as a snapshot holds them, changed by change (nil: as is).
func ufmRows(switches, ports int, change func([][]string) [][]string) [][]string {
	var rows [][]string
	for sw := range switches {
		for port := 1; port <= ports; port++ {
			rows = append(rows, []string{fmt.Sprintf("sw-%04d", sw), fmt.Sprint(port), fmt.Sprintf("0x%016x", 0xe41d2d0300000000+uint64(sw))})
		}
	}
	if change != nil {
		rows = change(rows)
	}
	return rows
}

// valuedSnapshot builds a snapshot of rows (switch_id, port, node_guid)
// with two counter columns whose values depend on seed.
func valuedSnapshot(t testing.TB, rows [][]string, seed int, at time.Time) *snapshot.Snapshot {
	t.Helper()
	labels := []string{snapshot.SwitchLabel, snapshot.PortLabel, "node_guid"}
	columns := []string{"PortXmitDataExtended", "SymbolErrorCounterExtended"}
	b := snapshot.NewBuilder(labels, columns, len(rows))
	for i, r := range rows {
		b.AddRowValues(r, []snapshot.Value{snapshot.UintValue(uint64(1000*seed + i)), snapshot.UintValue(uint64(seed))})
	}
	metrics, _ := schema.Default().Resolve(snapshot.Subsystem(labels), columns)
	s, err := b.Build(at, metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
