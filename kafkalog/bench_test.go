package kafkalog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The benchmarks run the poll log on an in-process kfake cluster of three
// brokers on loopback: the client's work (encoding, zstd, transactions,
// fetching, decompressing, assembling) and kfake's share the process and
// its cores, so the times are an upper bound of a publisher's or a
// replica's own cost beside a real cluster. cpu-s/poll is the process's
// CPU time (user and system) per poll, both sides together: unlike the
// time, it does not grow when other work shares the machine.

// benchFabric is the fabric (switches × ports in UFM Telemetry's
// layout, as the aggregator's parser reads the simulator's body), two
// polls a minute apart: the same rows, new values.
type benchFabric struct {
	csvBytes int
	snaps    [2]*snapshot.Snapshot
}

var benchFabrics sync.Map // "switches x ports" -> *benchFabric

func fabricOf(b *testing.B, switches, ports int) *benchFabric {
	b.Helper()
	key := fmt.Sprintf("%dx%d", switches, ports)
	if f, ok := benchFabrics.Load(key); ok {
		return f.(*benchFabric)
	}
	sim, err := simulator.New(simulator.Config{Switches: switches, Ports: ports, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	parser := ingest.NewParser(schema.Default())
	f := &benchFabric{}
	for i := range f.snaps {
		at := t0.Add(time.Duration(i) * time.Minute)
		sim.Tick(at)
		body := sim.UFMBody()
		f.csvBytes = len(body)
		if f.snaps[i], err = parser.Parse(body, at); err != nil {
			b.Fatal(err)
		}
	}
	benchFabrics.Store(key, f)
	return f
}

// poll is the fabric's i-th poll: the two value sets in turn, 10 s apart.
func (f *benchFabric) poll(i int) *snapshot.Snapshot {
	return f.snaps[i%2].WithTime(t0.Add(time.Duration(i) * 10 * time.Second))
}

// fullFabric is 2,000 switches × 64 ports; -short (make bench-short)
// takes a tiny one so that CI runs the benchmarks without their cost.
func fullFabric() (switches, ports int) {
	if testing.Short() {
		return 20, 4
	}
	return 2000, 64
}

func benchCluster(b *testing.B) *kfake.Cluster {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// batchBytes adds up the record batches a client produces to or fetches
// from topic, as franz-go's hooks report them: compressed as on the wire
// and in the log, and uncompressed.
type batchBytes struct {
	topic                    string
	compressed, uncompressed atomic.Int64
}

func (h *batchBytes) OnProduceBatchWritten(_ kgo.BrokerMetadata, topic string, _ int32, m kgo.ProduceBatchMetrics) {
	if topic == h.topic {
		h.compressed.Add(int64(m.CompressedBytes))
		h.uncompressed.Add(int64(m.UncompressedBytes))
	}
}

func (h *batchBytes) OnFetchBatchRead(_ kgo.BrokerMetadata, topic string, _ int32, m kgo.FetchBatchMetrics) {
	if topic == h.topic {
		h.compressed.Add(int64(m.CompressedBytes))
		h.uncompressed.Add(int64(m.UncompressedBytes))
	}
}

// benchPublisher starts a publisher of source "ufm" into a 16-partition
// topic and waits until it holds the lease.
func benchPublisher(b *testing.B, c *kfake.Cluster, topic string, hooks ...kgo.Hook) (p *Publisher, written prometheus.Counter, stop func()) {
	b.Helper()
	var err error
	p, err = NewPublisher(PublisherConfig{
		Conn:             Conn{Brokers: c.ListenAddrs(), ClientOpts: []kgo.Opt{kgo.WithHooks(hooks...)}},
		Topic:            topic,
		Source:           "ufm",
		Partitions:       16,
		MaxBufferedPolls: 1 << 10,
		Logger:           slog.New(slog.DiscardHandler),
		Registerer:       prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	stop = runBench(b, p.Run)
	waitUntil(b, "the publisher to become active", p.Active)
	return p, p.metrics.polls.WithLabelValues("ufm"), stop
}

// runBench runs fn(ctx) in a goroutine until stop (or the benchmark's end).
func runBench(b *testing.B, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			b.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	b.Cleanup(stop)
	return stop
}

// waitUntil polls cond every 100 µs, which is finer than anything the
// benchmarks measure, until it holds or a minute has passed.
func waitUntil(b *testing.B, what string, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkPublishFabric is one poll of the fabric through a publisher, as
// the aggregator hands it over after a poll: from Publish to the commit of
// its transaction (encoding, 2,016 records compressed with zstd and
// produced to 16 partitions, the checkpoint, the commit). SetBytes is the
// CSV body the poll came from, so MB/s compares with the ingest poll
// cycle's (BenchmarkFabricPollCycle in ingest); zstd-bytes/poll is what
// the poll's record batches take in the log, as franz-go compressed them.
func BenchmarkPublishFabric(b *testing.B) {
	switches, ports := fullFabric()
	f := fabricOf(b, switches, ports)
	c := benchCluster(b)
	hook := &batchBytes{topic: "fabric"}
	p, written, stop := benchPublisher(b, c, "fabric", hook)
	defer stop()
	b.SetBytes(int64(f.csvBytes))
	b.ReportAllocs()
	polls := 0
	cpu := cpuTime()
	for b.Loop() {
		p.Publish(f.poll(polls))
		polls++
		waitUntil(b, "the poll's commit", func() bool { return testutil.ToFloat64(written) == float64(polls) })
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(polls), "cpu-s/poll")
	b.ReportMetric(float64(hook.compressed.Load())/float64(polls), "zstd-bytes/poll")
	b.ReportMetric(float64(hook.uncompressed.Load())/float64(polls), "log-bytes/poll")
	b.ReportMetric(float64(f.csvBytes), "csv-bytes/poll")
}

// BenchmarkReplayFabric is a replica starting: a follower replays a topic
// holding polls of the fabric, read-committed, assembling every one, until
// it is ready (every partition read to the end it had at start, every
// poll handed over). The polls are written beforehand by a publisher.
// polls/s is the replay rate, s/hour-of-polls the time it gives for an
// hour at the default 10 s interval, 360 polls, at the rate measured.
// "fabric" is the full fabric with a dozen polls (an hour of it would
// hold 1.8 GB of records in kfake's memory); "tenth-fabric" and
// "tenth-fabric-hour" a tenth of it (200 switches × 64 ports) with a
// dozen polls and with a whole hour's 360, which says how the rate
// measured with a dozen polls holds over an hour. (-short: tiny fabrics.)
func BenchmarkReplayFabric(b *testing.B) {
	switches, ports := fullFabric()
	sizes := []struct {
		name                   string
		switches, ports, polls int
	}{{"fabric", switches, ports, 12}, {"tenth-fabric", switches / 10, ports, 12}, {"tenth-fabric-hour", switches / 10, ports, 360}}
	if testing.Short() {
		sizes[0].polls, sizes[1].polls, sizes[2].polls = 5, 5, 10
	}
	for _, size := range sizes {
		b.Run(size.name, func(b *testing.B) {
			benchReplay(b, fabricOf(b, size.switches, size.ports), size.polls)
		})
	}
}

func benchReplay(b *testing.B, f *benchFabric, n int) {
	c := benchCluster(b)
	p, written, stop := benchPublisher(b, c, "fabric")
	for i := range n {
		p.Publish(f.poll(i))
		// One at a time, so that the buffer never drops one.
		waitUntil(b, "a poll's commit", func() bool { return testutil.ToFloat64(written) == float64(i+1) })
	}
	stop()
	b.SetBytes(int64(f.csvBytes * n))
	b.ReportAllocs()
	hook := &batchBytes{topic: "fabric"}
	var replayed int
	cpu := cpuTime()
	for b.Loop() {
		var got atomic.Int64
		fol, err := NewFollower(FollowerConfig{
			Conn:       Conn{Brokers: c.ListenAddrs(), ClientOpts: []kgo.Opt{kgo.WithHooks(hook)}},
			Topic:      "fabric",
			Name:       "ufm",
			Replay:     24 * time.Hour,
			OnPoll:     func(*polllog.Poll) { got.Add(1) },
			Logger:     slog.New(slog.DiscardHandler),
			Registerer: prometheus.NewRegistry(),
		})
		if err != nil {
			b.Fatal(err)
		}
		stopFollower := runBench(b, fol.Run)
		waitUntil(b, "the replay", func() bool { return fol.Ready() && got.Load() == int64(n) })
		stopFollower()
		replayed++
	}
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(replayed*n), "cpu-s/poll")
	perReplay := b.Elapsed().Seconds() / float64(replayed)
	b.ReportMetric(float64(n)/perReplay, "polls/s")
	b.ReportMetric(perReplay, "s/replay")
	b.ReportMetric(perReplay/float64(n)*360, "s/hour-of-polls")
	b.ReportMetric(float64(hook.compressed.Load())/float64(replayed*n), "zstd-bytes-fetched/poll")
	b.ReportMetric(float64(n), "polls")
	b.ReportMetric(float64(f.snaps[0].NumRows()), "rows/poll")
}
