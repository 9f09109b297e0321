package kafkalog

import (
	"testing"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

const benchPartitions = 16

// benchPolls encodes n polls of the fabric, alternating its two
// snapshots, for a 16-partition topic.
func benchPolls(b *testing.B, n int) [][]polllog.Record {
	b.Helper()
	switches, ports := fullFabric()
	snaps := fabricOf(b, switches, ports).snaps
	enc := polllog.Encoder{Partitions: benchPartitions}
	out := make([][]polllog.Record, n)
	for i := range out {
		s := snaps[i%2]
		var err error
		if out[i], err = enc.Encode(polllog.PollID{Source: "ufm", Seq: uint64(i + 1), PublishTime: s.Time()}, s); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkReplayPartition assembles one partition's part of fabric polls
// alone, as a group follower replays a partition it takes over: a steady
// fabric, each poll sharing the previous one's rows. A takeover costs this
// per poll in the replay window and per partition taken over.
func BenchmarkReplayPartition(b *testing.B) {
	polls := benchPolls(b, 20)
	var a *polllog.Assembler
	var offset int64
	feed := func(poll []polllog.Record) *polllog.Poll {
		var done *polllog.Poll
		for _, r := range poll {
			if r.Partition != 0 {
				continue
			}
			out, rejected := a.Add(0, offset, r.Value)
			offset++
			if len(rejected) > 0 {
				b.Fatal(rejected)
			}
			for _, p := range out {
				done = p
			}
		}
		return done
	}
	b.ReportAllocs()
	i := len(polls)
	for b.Loop() {
		if i == len(polls) { // start the log over, warm
			b.StopTimer()
			a, offset, i = polllog.NewAssembler(polllog.AssemblerConfig{Partitions: []int32{0}}), 0, 1
			feed(polls[0])
			b.StartTimer()
		}
		if feed(polls[i]) == nil {
			b.Fatal("no poll completed")
		}
		i++
	}
}

// BenchmarkComposeHalfFabric joins 8 of 16 partitions' parts of a fabric
// poll into the snapshot a replica serves, for the same switches as the
// previous poll (a steady fabric): what a group follower adds to each poll
// beyond assembling its partitions.
func BenchmarkComposeHalfFabric(b *testing.B) {
	polls := benchPolls(b, 2)
	var parts [2][]*snapshot.Snapshot
	for i := range polls {
		for p := range int32(benchPartitions / 2) {
			a := polllog.NewAssembler(polllog.AssemblerConfig{Partitions: []int32{p}})
			for off, r := range polls[i] {
				if r.Partition != p {
					continue
				}
				done, _ := a.Add(p, int64(off), r.Value)
				for _, poll := range done {
					parts[i] = append(parts[i], poll.Snapshot)
				}
			}
		}
	}
	prev, err := composeSnapshots(parts[0], nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 1
	for b.Loop() {
		snap, err := composeSnapshots(parts[i], prev)
		if err != nil {
			b.Fatal(err)
		}
		prev, i = snap, 1-i
	}
	b.ReportMetric(float64(prev.NumRows()), "rows")
}
