package kafkalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Short timeouts, so that takeovers and failures take a second or two.
const (
	testSession = 1500 * time.Millisecond
	testWrite   = 3 * time.Second
	testWait    = 30 * time.Second // deadline of every wait: generous for -race on 2 cores
)

var t0 = time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)

// newCluster starts a 3-broker kfake cluster on loopback for one test.
func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(3),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testLogger logs into a buffer that is printed if the test fails.
func testLogger(t *testing.T, name string) *slog.Logger {
	t.Helper()
	var buf testproc.LockedBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testSnapshot is a small switch-level snapshot whose values depend on i,
// with the cells a log could get wrong: 2^64-1, negative, NaN, ±Inf, absent.
func testSnapshot(t *testing.T, i int) *snapshot.Snapshot {
	t.Helper()
	labels := []string{snapshot.SwitchLabel, "fabric"}
	columns := []string{"Rx_Bytes", "Temperature_C", "Custom"}
	b := snapshot.NewBuilder(labels, columns, 5)
	special := []snapshot.Value{snapshot.UintValue(math.MaxUint64), snapshot.IntValue(-5), snapshot.FloatValue(math.NaN()),
		snapshot.FloatValue(math.Inf(1)), snapshot.FloatValue(math.Inf(-1)), {}}
	for sw := range 5 {
		b.AddRowValues([]string{fmt.Sprintf("sw-%02d", sw), "east"}, []snapshot.Value{
			snapshot.UintValue(uint64(i*1000 + sw)), snapshot.FloatValue(40 + float64(i)/8), special[(i+sw)%len(special)],
		})
	}
	metrics, _ := schema.Default().Resolve(schema.SwitchSubsystem, columns)
	s, err := b.Build(t0.Add(time.Duration(i)*time.Second), metrics)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func assertSameSnapshot(t *testing.T, got, want *snapshot.Snapshot) {
	t.Helper()
	if !got.Time().Equal(want.Time()) || !slices.Equal(got.LabelNames(), want.LabelNames()) ||
		!slices.Equal(got.Columns(), want.Columns()) || got.NumRows() != want.NumRows() || !slices.Equal(got.Metrics(), want.Metrics()) {
		t.Fatalf("snapshot %v %v %v %d rows, want %v %v %v %d rows", got.Time(), got.LabelNames(), got.Columns(), got.NumRows(),
			want.Time(), want.LabelNames(), want.Columns(), want.NumRows())
	}
	for row := range want.NumRows() {
		if !slices.Equal(got.RowLabels(row), want.RowLabels(row)) {
			t.Fatalf("row %d: %v, want %v", row, got.RowLabels(row), want.RowLabels(row))
		}
		for col := range want.Columns() {
			if g, w := got.Value(row, col), want.Value(row, col); g != w {
				t.Fatalf("row %d col %d: %v (%v), want %v (%v)", row, col, g.Float64(), g.Kind(), w.Float64(), w.Kind())
			}
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run runs fn(ctx) in a goroutine until the test (or stop) ends it.
func run(t *testing.T, fn func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// publisherConfig is a test publisher of source on the cluster.
func publisherConfig(t *testing.T, c *kfake.Cluster, topic, source string) PublisherConfig {
	return PublisherConfig{
		Conn:             Conn{Brokers: c.ListenAddrs()},
		Topic:            topic,
		Source:           source,
		Partitions:       4,
		SessionTimeout:   testSession,
		WriteTimeout:     testWrite,
		MaxBufferedPolls: 64,
		Logger:           testLogger(t, "publisher "+source),
		Registerer:       prometheus.NewRegistry(),
	}
}

func startPublisher(t *testing.T, cfg PublisherConfig) (*Publisher, func()) {
	t.Helper()
	p, err := NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p, run(t, p.Run)
}

// polls collects what a follower hands over.
type polls struct {
	mu  sync.Mutex
	got []*polllog.Poll
}

func (c *polls) add(p *polllog.Poll) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, p)
}

func (c *polls) all() []*polllog.Poll {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func (c *polls) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func followerConfig(t *testing.T, brokers []string, topic string, got *polls) FollowerConfig {
	return FollowerConfig{
		Conn:       Conn{Brokers: brokers},
		Topic:      topic,
		Name:       "log",
		Replay:     time.Hour,
		OnPoll:     got.add,
		Logger:     testLogger(t, "follower"),
		Registerer: prometheus.NewRegistry(),
	}
}

func startFollower(t *testing.T, cfg FollowerConfig) (*Follower, func()) {
	t.Helper()
	f, err := NewFollower(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, run(t, f.Run)
}

// counter reads a counter or gauge of a registry.
func counter(t *testing.T, reg prometheus.Registerer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.(prometheus.Gatherer).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
					return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}) {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// cuttableDialer dials brokers until cut: then it closes every connection
// it made and refuses new ones, as a network partition (or a killed
// process, as far as Kafka can tell) would.
type cuttableDialer struct {
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func (d *cuttableDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cut {
		return nil, errors.New("test: network cut")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *cuttableDialer) setCut(cut bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cut = cut
	if cut {
		for _, c := range d.conns {
			c.Close()
		}
		d.conns = nil
	}
}

func (d *cuttableDialer) opt() kgo.Opt { return kgo.Dialer(d.dial) }

// readAll reads every record of a topic's partitions with the given
// isolation, up to their high watermarks.
func readAll(t *testing.T, brokers []string, topic string, partitions int, isolation kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	offsets := map[int32]kgo.Offset{}
	for p := range int32(partitions) {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(isolation),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []*kgo.Record
	for ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		out = append(out, f.Records()...)
	}
	return out
}
