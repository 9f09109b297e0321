package kafkalog

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/polllog"
)

// TestPartitionMatchesFranzGo checks that polllog places keys where
// franz-go's (and Kafka's) default key partitioner does.
func TestPartitionMatchesFranzGo(t *testing.T) {
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 16, 100} {
		for i := range 2000 {
			key := polllog.Key("ufm", fmt.Sprintf("switch-%d", i))
			if got, want := polllog.Partition(key, n), part.Partition(&kgo.Record{Key: key}, n); int(got) != want {
				t.Fatalf("key %q of %d partitions: polllog %d, franz-go %d", key, n, got, want)
			}
		}
	}
}

// TestPublishFollow publishes polls and checks that a follower rebuilds
// exactly the same snapshots, cell by cell, in order, and that a poll the
// caller rejects (and so never publishes) writes nothing.
func TestPublishFollow(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, _ := startPublisher(t, cfg)
	var got polls
	f, _ := startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	const n = 6
	var want []int
	for i := range n {
		if i == 3 {
			continue // rejected by the parser: never published
		}
		p.Publish(testSnapshot(t, i))
		want = append(want, i)
	}
	waitFor(t, "every poll", func() bool { return got.len() >= len(want) })
	waitFor(t, "the follower to be ready", f.Ready)
	all := got.all()
	if len(all) != len(want) {
		t.Fatalf("%d polls, want %d", len(all), len(want))
	}
	for k, poll := range all {
		assertSameSnapshot(t, poll.Snapshot, testSnapshot(t, want[k]))
		if poll.Source != "sim" || poll.Partitions != 4 || len(poll.Offsets) != 4 || (k > 0 && poll.Seq <= all[k-1].Seq) {
			t.Errorf("poll %d: %+v", k, poll)
		}
	}
	waitFor(t, "the written polls to be counted", func() bool {
		return counter(t, cfg.Registerer, "fabric_polllog_polls_written_total", "source", "sim") == float64(len(want))
	})
	if r := counter(t, f.cfg.Registerer, "fabric_polllog_polls_read_total", "source", "log"); r != float64(len(want)) {
		t.Errorf("polls read %v, want %d", r, len(want))
	}
	if lag := f.Lag(); len(lag) != 4 {
		t.Errorf("lag %v", lag)
	}
}

// TestReplayPacesPartitions replays many polls with an assembler that may
// hold only a few incomplete ones: a fetch brings many polls' records of
// one partition before another partition's, and the follower must hold
// the partitions that run ahead rather than drop polls.
func TestReplayPacesPartitions(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, _ := startPublisher(t, cfg)
	waitFor(t, "the publisher to become active", p.Active)
	const n = 60
	for i := range n {
		p.Publish(testSnapshot(t, i))
	}
	waitFor(t, "every poll written", func() bool {
		return counter(t, cfg.Registerer, "fabric_polllog_polls_written_total", "source", "sim") == n
	})
	var got polls
	fcfg := followerConfig(t, c.ListenAddrs(), "polls", &got)
	fcfg.Assembler = polllog.AssemblerConfig{MaxPendingPolls: 3}
	f, _ := startFollower(t, fcfg)
	waitFor(t, "the follower to be ready", f.Ready)
	if got.len() != n {
		t.Fatalf("replayed %d polls, want %d", got.len(), n)
	}
	for i, poll := range got.all() {
		assertSameSnapshot(t, poll.Snapshot, testSnapshot(t, i))
	}
}

// TestExistingTopicKeepsItsPartitions publishes to a topic that exists
// with another partition count than configured: the topic's own is used.
func TestExistingTopicKeepsItsPartitions(t *testing.T) {
	c := newCluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(context.Background(), 3, 1, nil, "polls"); err != nil {
		t.Fatal(err)
	}
	cfg := publisherConfig(t, c, "polls", "sim") // asks for 4
	p, _ := startPublisher(t, cfg)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 0))
	waitFor(t, "the poll", func() bool { return got.len() >= 1 })
	if poll := got.all()[0]; poll.Partitions != 3 || len(poll.Offsets) != 3 {
		t.Errorf("poll written to %d partitions (%d read), want the topic's 3", poll.Partitions, len(poll.Offsets))
	}
}
