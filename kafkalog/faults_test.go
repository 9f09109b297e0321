package kafkalog

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// TestAbortedPollIsInvisible fails a poll's transaction after half of its
// records reached the brokers: the follower never sees that half (a
// read-uncommitted reader does), and the retried poll arrives once, whole.
func TestAbortedPollIsInvisible(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var failed atomic.Bool
	p.failMidway = func() error {
		if failed.CompareAndSwap(false, true) {
			return errors.New("test: failing after half of the records")
		}
		return nil
	}
	run(t, p.Run)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 1))
	waitFor(t, "the retried poll", func() bool { return got.len() >= 1 })
	p.Publish(testSnapshot(t, 2))
	waitFor(t, "the next poll", func() bool { return got.len() >= 2 })
	all := got.all()
	if len(all) != 2 {
		t.Fatalf("%d polls, want 2", len(all))
	}
	assertSameSnapshot(t, all[0].Snapshot, testSnapshot(t, 1))
	assertSameSnapshot(t, all[1].Snapshot, testSnapshot(t, 2))
	if !failed.Load() {
		t.Fatal("the hook never failed a transaction")
	}
	if a := counter(t, cfg.Registerer, "fabric_polllog_transactions_aborted_total", "source", "sim"); a != 1 {
		t.Errorf("%v transactions aborted, want 1", a)
	}
	// The aborted half is in the log, visible to a reader that does not
	// ask for committed records only.
	committed := readAll(t, c.ListenAddrs(), "polls", 4, kgo.ReadCommitted())
	uncommitted := readAll(t, c.ListenAddrs(), "polls", 4, kgo.ReadUncommitted())
	if len(uncommitted) <= len(committed) {
		t.Errorf("read uncommitted %d records, committed %d: the aborted half never reached the log", len(uncommitted), len(committed))
	}
}

// TestBrokerRemoved removes brokers, one of them in the middle of a poll's
// transaction: no committed poll is lost and the follower keeps following.
func TestBrokerRemoved(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var removeMidway atomic.Bool
	p.failMidway = func() error {
		if removeMidway.CompareAndSwap(true, false) {
			if err := c.RemoveNode(c.LeaderFor("polls", 1)); err != nil {
				t.Errorf("removing a broker: %v", err)
			}
		}
		return nil
	}
	run(t, p.Run)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	for i := range 3 {
		p.Publish(testSnapshot(t, i))
	}
	waitFor(t, "three polls", func() bool { return got.len() >= 3 })
	if err := c.RemoveNode(c.LeaderFor("polls", 0)); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		p.Publish(testSnapshot(t, i))
	}
	waitFor(t, "three more polls", func() bool { return got.len() >= 6 })
	removeMidway.Store(true)
	p.Publish(testSnapshot(t, 6))
	waitFor(t, "the poll whose broker went away", func() bool { return got.len() >= 7 })
	if removeMidway.Load() {
		t.Fatal("the hook never removed a broker")
	}
	p.Publish(testSnapshot(t, 7))
	waitFor(t, "a poll on one broker", func() bool { return got.len() >= 8 })
	all := got.all()
	if len(all) != 8 {
		t.Fatalf("%d polls, want 8", len(all))
	}
	for i, poll := range all {
		assertSameSnapshot(t, poll.Snapshot, testSnapshot(t, i))
	}
}

// TestStandbyTakesOver cuts the active publisher off (it stops answering,
// as a killed or paused process does, without leaving the group): the
// standby takes over within the session timeout and continues the
// sequence, and the old one, back, writes nothing.
func TestStandbyTakesOver(t *testing.T) {
	c := newCluster(t)
	var cutA cuttableDialer
	cfgA := publisherConfig(t, c, "polls", "sim")
	cfgA.ClientOpts = []kgo.Opt{cutA.opt()}
	a, _ := startPublisher(t, cfgA)
	waitFor(t, "A to become active", a.Active)
	cfgB := publisherConfig(t, c, "polls", "sim")
	b, _ := startPublisher(t, cfgB)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))

	// Both poll the source; A writes.
	for i := range 3 {
		a.Publish(testSnapshot(t, i))
		b.Publish(testSnapshot(t, i))
	}
	waitFor(t, "A's polls", func() bool { return got.len() >= 3 })
	if b.Active() {
		t.Fatal("B active beside A")
	}

	cutA.setCut(true)
	cut := time.Now()
	waitFor(t, "B to take over", b.Active)
	t.Logf("B took over %v after A was cut off (session timeout %v)", time.Since(cut).Round(time.Millisecond), testSession)
	// A's late poll, queued while it is cut off, must never reach the log.
	a.Publish(testSnapshot(t, 100))
	b.Publish(testSnapshot(t, 3))
	waitFor(t, "B's poll", func() bool { return got.len() >= 4 })

	cutA.setCut(false)
	waitFor(t, "A to stand by", func() bool { return !a.Active() })
	b.Publish(testSnapshot(t, 4))
	a.Publish(testSnapshot(t, 101))
	waitFor(t, "B's next poll", func() bool { return got.len() >= 5 })
	all := got.all()
	for i, poll := range all {
		assertSameSnapshot(t, poll.Snapshot, testSnapshot(t, i))
		if i > 0 && poll.Seq <= all[i-1].Seq {
			t.Errorf("poll %d: seq %d after %d", i, poll.Seq, all[i-1].Seq)
		}
	}
	if !b.Active() || a.Active() {
		t.Errorf("A active %v, B active %v; want B alone", a.Active(), b.Active())
	}
}

// TestZombieIsFenced initializes the source's transactional ID behind the
// active publisher's back, as a new holder does: the active one's next
// transaction fails as fenced, it steps down and, being the only member of
// the lease group, takes the lease again, fencing the other in turn.
func TestZombieIsFenced(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, _ := startPublisher(t, cfg)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 0))
	waitFor(t, "the first poll", func() bool { return got.len() >= 1 })

	other, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID(TransactionalID("polls", "sim")),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	if _, _, err := other.ProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := other.ProduceSync(ctx, &kgo.Record{Topic: "polls", Partition: 0, Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	p.Publish(testSnapshot(t, 1))
	waitFor(t, "the poll, written after the publisher fenced the other back", func() bool { return got.len() >= 2 })
	if err := other.EndTransaction(ctx, kgo.TryCommit); !isFenced(err) {
		t.Errorf("the fenced producer's commit: %v, want fenced", err)
	}
	if a := counter(t, cfg.Registerer, "fabric_polllog_transactions_aborted_total", "source", "sim"); a != 1 {
		t.Errorf("%v transactions aborted, want the fenced one", a)
	}
	if n := counter(t, cfg.Registerer, "fabric_polllog_lease_acquired_total", "source", "sim"); n != 2 {
		t.Errorf("lease acquired %v times, want 2", n)
	}
	for _, r := range readAll(t, c.ListenAddrs(), "polls", 4, kgo.ReadCommitted()) {
		if string(r.Value) == "zombie" {
			t.Error("the fenced producer's record was committed")
		}
	}
	all := got.all()
	if len(all) != 2 {
		t.Fatalf("%d polls", len(all))
	}
	assertSameSnapshot(t, all[1].Snapshot, testSnapshot(t, 1))
}

// TestKafkaDownDropsOldest cuts the publisher off from Kafka while more
// polls than its buffer holds arrive: the oldest are dropped and counted,
// and the newest are written once Kafka is back.
func TestKafkaDownDropsOldest(t *testing.T) {
	c := newCluster(t)
	var cut cuttableDialer
	cfg := publisherConfig(t, c, "polls", "sim")
	cfg.MaxBufferedPolls = 3
	cfg.ClientOpts = []kgo.Opt{cut.opt()}
	p, _ := startPublisher(t, cfg)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 0))
	waitFor(t, "the first poll", func() bool { return got.len() >= 1 })

	cut.setCut(true)
	for i := 10; i < 17; i++ {
		p.Publish(testSnapshot(t, i)) // never blocks
	}
	waitFor(t, "four polls dropped", func() bool {
		return counter(t, cfg.Registerer, "fabric_polllog_polls_dropped_total", "source", "sim", "reason", DropBufferFull) == 4
	})
	cut.setCut(false)
	waitFor(t, "the buffered polls", func() bool { return got.len() >= 4 })
	all := got.all()
	if len(all) != 4 {
		t.Fatalf("%d polls, want 4", len(all))
	}
	for k, i := range []int{0, 14, 15, 16} {
		assertSameSnapshot(t, all[k].Snapshot, testSnapshot(t, i))
	}
}

// TestReplayWindow starts a follower after two stretches of polls a
// second apart, with a replay window that reaches back into the gap: it
// replays the second stretch only, and is ready once it has. (The window
// is measured on the records' timestamps, which transaction markers take
// from the broker's clock, so the test runs in real time, scaled down.)
func TestReplayWindow(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, _ := startPublisher(t, cfg)
	waitFor(t, "the publisher to become active", p.Active)
	publish := func(from, to int) {
		for i := from; i < to; i++ {
			p.Publish(testSnapshot(t, i))
			want := float64(i + 1)
			waitFor(t, "poll "+strconv.Itoa(i), func() bool {
				return counter(t, cfg.Registerer, "fabric_polllog_polls_written_total", "source", "sim") == want
			})
		}
	}
	publish(0, 6)
	gapStart := time.Now()
	const gap = time.Second
	waitFor(t, "the gap", func() bool { return time.Since(gapStart) > gap })
	publish(6, 12)

	var got polls
	fcfg := followerConfig(t, c.ListenAddrs(), "polls", &got)
	start := time.Now()
	fcfg.Now = func() time.Time { return start }
	fcfg.Replay = start.Sub(gapStart.Add(gap / 2))
	f, _ := startFollower(t, fcfg)
	waitFor(t, "the follower to be ready", f.Ready)
	all := got.all()
	if len(all) != 6 {
		t.Fatalf("replayed %d polls, want the 6 after the gap", len(all))
	}
	for k, poll := range all {
		assertSameSnapshot(t, poll.Snapshot, testSnapshot(t, 6+k))
	}
	if r := counter(t, fcfg.Registerer, "fabric_polllog_follower_ready", "source", "log"); r != 1 {
		t.Errorf("follower_ready %v", r)
	}
}

// TestUnreachableAtStart starts a follower (and a publisher) before any
// broker listens: they retry and say so, the follower is not ready, and
// both get going once the cluster appears.
func TestUnreachableAtStart(t *testing.T) {
	ports, addrs := testproc.FreePorts(t, 3)
	var logs testproc.LockedBuffer
	var got polls
	fcfg := followerConfig(t, addrs, "polls", &got)
	fcfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	fcfg.setupTimeout = 500 * time.Millisecond
	f, _ := startFollower(t, fcfg)
	waitFor(t, "the follower to log two failed attempts", func() bool {
		return strings.Count(logs.String(), "Cannot read the poll log; not ready, retrying") >= 2
	})
	if f.Ready() {
		t.Fatal("ready without brokers")
	}
	t.Log(strings.SplitN(logs.String(), "\n", 2)[0])

	c := newCluster(t, kfake.Ports(ports...))
	cfg := publisherConfig(t, c, "polls", "sim")
	p, _ := startPublisher(t, cfg)
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 0))
	waitFor(t, "the poll", func() bool { return got.len() >= 1 })
	waitFor(t, "the follower to be ready", f.Ready)
	assertSameSnapshot(t, got.all()[0].Snapshot, testSnapshot(t, 0))
}

// TestSourceClockGoesBack: a poll with the time of the last one written
// is the same snapshot again and is dropped as stale; a poll whose source
// time went back, taken while active, is written: the publisher's own view
// follows the source's clock, and so must the replicas'.
func TestSourceClockGoesBack(t *testing.T) {
	c := newCluster(t)
	cfg := publisherConfig(t, c, "polls", "sim")
	p, _ := startPublisher(t, cfg)
	var got polls
	startFollower(t, followerConfig(t, c.ListenAddrs(), "polls", &got))
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 5))
	waitFor(t, "the first poll", func() bool { return got.len() >= 1 })
	p.Publish(testSnapshot(t, 5))
	p.Publish(testSnapshot(t, 2))
	waitFor(t, "the poll from the past", func() bool { return got.len() >= 2 })
	all := got.all()
	if len(all) != 2 {
		t.Fatalf("%d polls, want 2", len(all))
	}
	assertSameSnapshot(t, all[1].Snapshot, testSnapshot(t, 2))
	if n := counter(t, cfg.Registerer, "fabric_polllog_polls_dropped_total", "source", "sim", "reason", DropStale); n != 1 {
		t.Errorf("%v polls dropped as stale, want the repeated one", n)
	}
}
