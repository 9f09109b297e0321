package kafkalog

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// fleetSnapshot is a switch-level snapshot of many switches, enough that
// every partition of a small topic holds some; its values depend on i, so
// that rows of two polls never look alike.
func fleetSnapshot(t testing.TB, i, switches int) *snapshot.Snapshot {
	t.Helper()
	columns := []string{"Rx_Bytes", "Temperature_C"}
	b := snapshot.NewBuilder([]string{snapshot.SwitchLabel}, columns, switches)
	for sw := range switches {
		b.AddRowValues([]string{fmt.Sprintf("sw-%03d", sw)}, []snapshot.Value{
			snapshot.UintValue(uint64(i*10000 + sw)), snapshot.FloatValue(40 + float64(i) + float64(sw)/100),
		})
	}
	metrics, _ := schema.Default().Resolve(schema.SwitchSubsystem, columns)
	s, err := b.Build(t0.Add(time.Duration(i)*time.Second), metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// partitionPolls encodes poll seq of s into a topic of n partitions and
// assembles each partition alone, as a group follower does.
func partitionPolls(t testing.TB, seq uint64, s *snapshot.Snapshot, n int) map[int32]*polllog.Poll {
	t.Helper()
	enc := polllog.Encoder{Partitions: n}
	recs, err := enc.Encode(polllog.PollID{Source: "sim", Seq: seq, PublishTime: s.Time()}, s)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]*polllog.Poll{}
	for p := range int32(n) {
		a := polllog.NewAssembler(polllog.AssemblerConfig{Partitions: []int32{p}})
		for off, r := range recs {
			if r.Partition != p {
				continue
			}
			polls, rejected := a.Add(p, int64(off), r.Value)
			if len(rejected) > 0 {
				t.Fatalf("partition %d: %v", p, rejected)
			}
			for _, poll := range polls {
				out[p] = poll
			}
		}
	}
	if len(out) != n {
		t.Fatalf("%d partitions assembled, want %d", len(out), n)
	}
	return out
}

// wholePartitions checks that got holds rows of want only, each exactly as
// want has it, and every row of each partition it holds any of; it returns
// those partitions.
func wholePartitions(t testing.TB, got, want *snapshot.Snapshot, n int) []int32 {
	t.Helper()
	if !got.Time().Equal(want.Time()) || !slices.Equal(got.LabelNames(), want.LabelNames()) || !slices.Equal(got.Columns(), want.Columns()) {
		t.Fatalf("snapshot of %v %v %v, want %v %v %v", got.Time(), got.LabelNames(), got.Columns(), want.Time(), want.LabelNames(), want.Columns())
	}
	partition := func(sw string) int32 { return polllog.Partition(polllog.Key("sim", sw), n) }
	rows := map[int32]int{}
	for _, sw := range got.Switches() {
		gs, ge, _ := got.SwitchRows(sw)
		ws, we, ok := want.SwitchRows(sw)
		if !ok || ge-gs != we-ws {
			t.Fatalf("switch %s: %d rows, want %d (present %v)", sw, ge-gs, we-ws, ok)
		}
		for k := range ge - gs {
			if !slices.Equal(got.RowLabels(gs+k), want.RowLabels(ws+k)) {
				t.Fatalf("switch %s row %d: %v, want %v", sw, k, got.RowLabels(gs+k), want.RowLabels(ws+k))
			}
			for col := range want.Columns() {
				if g, w := got.Value(gs+k, col), want.Value(ws+k, col); g != w {
					t.Fatalf("switch %s row %d col %d: %v, want %v", sw, k, col, g.Float64(), w.Float64())
				}
			}
		}
		rows[partition(sw)] += ge - gs
	}
	for p, n := range rows {
		wantRows := 0
		for _, sw := range want.Switches() {
			if partition(sw) == p {
				s, e, _ := want.SwitchRows(sw)
				wantRows += e - s
			}
		}
		if n != wantRows {
			t.Fatalf("partition %d: %d rows, want all %d", p, n, wantRows)
		}
	}
	return slices.Sorted(maps.Keys(rows))
}

// composed records what a composer delivers.
type composed struct {
	polls []*polllog.Poll
	fresh []bool
}

func newTestComposer(delivered *composed) *composer {
	return newComposer(2, 8, func(p *polllog.Poll, fresh bool) {
		delivered.polls = append(delivered.polls, p)
		delivered.fresh = append(delivered.fresh, fresh)
	}, func(r polllog.Rejection) { panic(r.Error()) })
}

const testPartitions = 4

// TestComposeWaitsForEveryServedPartition feeds the partitions' polls in
// uneven order: a poll is delivered once every served partition has it,
// in order, whole, and the partition that runs ahead is paced.
func TestComposeWaitsForEveryServedPartition(t *testing.T) {
	var got composed
	c := newTestComposer(&got)
	for p := range int32(testPartitions) {
		c.load(p)
	}
	snaps := map[uint64]*snapshot.Snapshot{}
	parts := map[uint64]map[int32]*polllog.Poll{}
	for seq := uint64(1); seq <= 3; seq++ {
		snaps[seq] = fleetSnapshot(t, int(seq), 40)
		parts[seq] = partitionPolls(t, seq, snaps[seq], testPartitions)
	}
	c.add(0, parts[1][0])
	c.add(0, parts[2][0])
	if !c.ahead(0) || c.ahead(1) {
		t.Errorf("ahead: partition 0 %v, 1 %v; want partition 0 only", c.ahead(0), c.ahead(1))
	}
	for _, p := range []int32{1, 2} {
		c.add(p, parts[1][p])
		c.add(p, parts[2][p])
	}
	if len(got.polls) != 0 {
		t.Fatalf("delivered %d polls before partition 3 brought any", len(got.polls))
	}
	c.add(3, parts[1][3])
	c.add(3, parts[2][3])
	c.add(0, parts[3][0])
	if len(got.polls) != 2 {
		t.Fatalf("delivered %d polls, want 2", len(got.polls))
	}
	for k, poll := range got.polls {
		assertSameSnapshot(t, poll.Snapshot, snaps[uint64(k+1)])
		if poll.Seq != uint64(k+1) || !got.fresh[k] || len(poll.Offsets) != testPartitions {
			t.Errorf("poll %d: seq %d fresh %v offsets %v", k, poll.Seq, got.fresh[k], poll.Offsets)
		}
	}
	if c.ahead(0) {
		t.Error("partition 0 still ahead after the others caught up")
	}
}

// TestComposeLoadsWhole assigns a partition while the others are served:
// its polls are not delivered while it loads; loaded, it joins the current
// poll if it has it (delivered again, whole), else the next one.
func TestComposeLoadsWhole(t *testing.T) {
	var got composed
	c := newTestComposer(&got)
	c.load(0)
	c.load(1)
	snaps := map[uint64]*snapshot.Snapshot{}
	parts := map[uint64]map[int32]*polllog.Poll{}
	for seq := uint64(1); seq <= 4; seq++ {
		snaps[seq] = fleetSnapshot(t, int(seq), 40)
		parts[seq] = partitionPolls(t, seq, snaps[seq], testPartitions)
	}
	// Partition 2 replays from before poll 2; partition 3 lags behind it.
	c.add(2, parts[1][2])
	for _, p := range []int32{0, 1} {
		c.add(p, parts[1][p])
		c.add(p, parts[2][p])
	}
	c.add(2, parts[2][2])
	c.add(3, parts[1][3])
	if n := len(got.polls); n != 2 {
		t.Fatalf("delivered %d polls, want 2", n)
	}
	for k, poll := range got.polls {
		if ps := wholePartitions(t, poll.Snapshot, snaps[uint64(k+1)], testPartitions); !slices.Equal(ps, []int32{0, 1}) {
			t.Errorf("poll %d holds partitions %v, want those served, [0 1]", k, ps)
		}
	}

	c.load(2) // has poll 2, the current one
	if n := len(got.polls); n != 3 || got.fresh[2] {
		t.Fatalf("delivered %d polls (last fresh %v), want poll 2 again", n, got.fresh[n-1])
	}
	if ps := wholePartitions(t, got.polls[2].Snapshot, snaps[2], testPartitions); !slices.Equal(ps, []int32{0, 1, 2}) {
		t.Errorf("poll 2 again holds %v, want [0 1 2]", ps)
	}
	c.load(3) // has poll 1 only: served from the next poll it has with the others
	if n := len(got.polls); n != 3 {
		t.Fatalf("delivered %d polls when a partition behind the others loaded", n)
	}
	for _, p := range []int32{0, 1, 2} {
		c.add(p, parts[3][p])
	}
	if n := len(got.polls); n != 3 {
		t.Fatalf("delivered poll 3 without partition 3")
	}
	c.add(3, parts[2][3]) // the current poll: partition 3 joins it
	if n := len(got.polls); n != 4 || got.fresh[3] || got.polls[3].Seq != 2 {
		t.Fatalf("delivered %d polls, want poll 2 again", n)
	}
	assertSameSnapshot(t, got.polls[3].Snapshot, snaps[2])
	c.add(3, parts[3][3])
	if n := len(got.polls); n != 5 || !got.fresh[4] {
		t.Fatalf("delivered %d polls, want poll 3", n)
	}
	assertSameSnapshot(t, got.polls[4].Snapshot, snaps[3])
}

// TestComposeReplayServesNewest replays a partition while nothing of the
// source is served (a replica starting): loaded, it serves its newest
// complete poll, not the history before it.
func TestComposeReplayServesNewest(t *testing.T) {
	var got composed
	c := newTestComposer(&got)
	var last *snapshot.Snapshot
	for seq := uint64(1); seq <= 5; seq++ {
		last = fleetSnapshot(t, int(seq), 40)
		c.add(0, partitionPolls(t, seq, last, testPartitions)[0])
	}
	if c.ahead(0) || len(got.polls) != 0 {
		t.Fatalf("ahead %v, %d polls delivered while loading", c.ahead(0), len(got.polls))
	}
	c.load(0)
	if len(got.polls) != 1 || got.polls[0].Seq != 5 {
		t.Fatalf("delivered %d polls on load, want the newest alone", len(got.polls))
	}
	if ps := wholePartitions(t, got.polls[0].Snapshot, last, testPartitions); !slices.Equal(ps, []int32{0}) {
		t.Errorf("serves %v", ps)
	}
}

// TestComposeRemove gives partitions up: the current poll is delivered
// again without their rows, and with none left, without any.
func TestComposeRemove(t *testing.T) {
	var got composed
	c := newTestComposer(&got)
	snap := fleetSnapshot(t, 1, 40)
	parts := partitionPolls(t, 1, snap, testPartitions)
	for p := range int32(testPartitions) {
		c.load(p)
	}
	for p := range int32(testPartitions) {
		c.add(p, parts[p])
	}
	c.remove([]int32{1, 3})
	if n := len(got.polls); n != 2 || got.fresh[1] || got.polls[1].Seq != 1 {
		t.Fatalf("delivered %d polls, want poll 1 again", n)
	}
	if ps := wholePartitions(t, got.polls[1].Snapshot, snap, testPartitions); !slices.Equal(ps, []int32{0, 2}) {
		t.Errorf("holds %v after giving 1 and 3 up", ps)
	}
	c.freeze([]int32{0})
	if n := len(got.polls); n != 2 {
		t.Fatal("a frozen partition's rows left at once")
	}
	c.remove([]int32{0, 2})
	if n := len(got.polls); n != 3 || got.polls[2].Snapshot.NumRows() != 0 || !got.polls[2].Snapshot.Time().Equal(snap.Time()) {
		t.Fatalf("delivered %d polls, the last with %d rows; want poll 1 again, empty", n, got.polls[n-1].Snapshot.NumRows())
	}
}

// TestComposeSkipsAPollAPartitionLacks: a partition whose part of a poll
// was rejected goes on to the next poll; the poll is not served half.
func TestComposeSkipsAPollAPartitionLacks(t *testing.T) {
	var got composed
	c := newTestComposer(&got)
	c.load(0)
	c.load(1)
	snaps := []*snapshot.Snapshot{nil, fleetSnapshot(t, 1, 40), fleetSnapshot(t, 2, 40)}
	p1, p2 := partitionPolls(t, 1, snaps[1], 2), partitionPolls(t, 2, snaps[2], 2)
	c.add(0, p1[0])
	c.add(1, p2[1]) // partition 1 never completed poll 1
	if len(got.polls) != 0 {
		t.Fatal("delivered poll 1 without partition 1's part")
	}
	c.add(0, p2[0])
	if len(got.polls) != 1 || got.polls[0].Seq != 2 {
		t.Fatalf("delivered %d polls, want poll 2 alone", len(got.polls))
	}
	assertSameSnapshot(t, got.polls[0].Snapshot, snaps[2])
}

// TestComposeSnapshotsSharesIndex: composing the same switches again
// shares the previous composition's labels, as a steady fabric does.
func TestComposeSnapshotsSharesIndex(t *testing.T) {
	a, b := fleetSnapshot(t, 1, 40), fleetSnapshot(t, 2, 40)
	pa, pb := partitionPolls(t, 1, a, testPartitions), partitionPolls(t, 2, b, testPartitions)
	var partsA, partsB []*snapshot.Snapshot
	for p := range int32(testPartitions) {
		partsA, partsB = append(partsA, pa[p].Snapshot), append(partsB, pb[p].Snapshot)
	}
	first, err := composeSnapshots(partsA, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := composeSnapshots(partsB, first)
	if err != nil {
		t.Fatal(err)
	}
	assertSameSnapshot(t, first, a)
	assertSameSnapshot(t, second, b)
	if !second.SameRows(first) {
		t.Error("the second composition copied the rows' labels")
	}
}
