package aggregator

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// testSession is the publishers' lease session timeout in these tests.
const testSession = 1500 * time.Millisecond

// newKafka starts a 3-broker kfake cluster on loopback for one test.
func newKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// publishing is the --kafka.* settings of an aggregator that publishes its
// HTTP sources to topic.
func publishing(c *kfake.Cluster, topic string) kafkalog.Options {
	return kafkalog.Options{Brokers: strings.Join(c.ListenAddrs(), ","), Topic: topic, Publish: true,
		Partitions: 4, SessionTimeout: testSession}
}

// logSource is a kafka:// source of topic on c (nil: a broker address
// where none listens).
func logSource(name string, c *kfake.Cluster, topic string) config.Source {
	brokers := "127.0.0.1:1"
	if c != nil {
		brokers = strings.Join(c.ListenAddrs(), ",")
	}
	return config.Source{Name: name, URL: "kafka://" + brokers + "/" + topic,
		Interval: model.Duration(time.Second), Timeout: model.Duration(time.Second), MaxBytes: 1}
}

func readyOf(a *Aggregator) (int, string) {
	rec := httptest.NewRecorder()
	a.ready(rec, httptest.NewRequest("GET", "/-/ready", nil))
	return rec.Code, rec.Body.String()
}

func get(a *Aggregator, target string) string {
	rec := httptest.NewRecorder()
	a.Router().ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func servedNames(a *Aggregator) []string {
	var names []string
	for _, s := range *a.served.Load() {
		names = append(names, s.cfg.Name)
	}
	return names
}

// TestReplicaLearnsSources: an aggregator publishes two HTTP sources (one
// with a label) to the poll log; a replica that follows it starts with no
// source at all and learns each from its first poll: its view holds both,
// with the publisher's labels, the query API and the self-metrics see
// them, and it keeps following. It is not ready before its follower is.
func TestReplicaLearnsSources(t *testing.T) {
	c := newKafka(t)
	east := newFakeSource(t, 4, 3, 1)
	core := newFakeSource(t, 3, 0, 3)
	eastLabels := map[string]string{"fabric": "east"}
	replica := start(t, Config{Sources: []config.Source{logSource("log", c, "polls")}, MaxStaleness: 100_000 * time.Hour})
	if code, body := readyOf(replica); code != 503 || !strings.Contains(body, "poll log polls") {
		t.Errorf("replica before reading the log: %d %s", code, body)
	}
	if names := servedNames(replica); len(names) != 0 {
		t.Fatalf("replica serves %v before any poll", names)
	}
	if body := get(replica, "/api/v1/label/fabric/values"); !strings.Contains(body, `"data":[]`) {
		t.Errorf("label values before any poll: %s", body)
	}

	start(t, Config{
		Sources:      []config.Source{sourceConfig("east", east.url, eastLabels), sourceConfig("core", core.url, nil)},
		MaxStaleness: 100_000 * time.Hour,
		Kafka:        publishing(c, "polls"),
	})
	both := func() error {
		v := replica.Store().Load()
		return errorsJoin(containsSource(v, east.expected(t), eastLabels), containsSource(v, core.expected(t), nil))
	}
	eventually(t, "the replica serves both sources", both)
	if names := servedNames(replica); !slices.Equal(names, []string{"east", "core"}) && !slices.Equal(names, []string{"core", "east"}) {
		t.Errorf("replica's sources %v", names)
	}
	eventually(t, "the replica is ready", func() error {
		if code, body := readyOf(replica); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	if body := get(replica, "/api/v1/label/fabric/values"); !strings.Contains(body, `"data":["east"]`) {
		t.Errorf("label values of the learnt sources: %s", body)
	}
	metrics := get(replica, "/metrics")
	for _, want := range []string{`fabric_source_up{source="east"} 1`, `fabric_source_up{source="core"} 1`,
		`fabric_polllog_follower_ready{source="log"} 1`, `fabric_history_snapshots{source="east"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("replica's /metrics lacks %s", want)
		}
	}

	east.advance()
	core.advance()
	eventually(t, "the replica follows new polls", both)
}

// TestLogSourceNameTaken: a source in the log named like one of the
// replica's own HTTP sources is refused (logged, counted, dropped): the
// replica keeps serving its own, and the log's other sources.
func TestLogSourceNameTaken(t *testing.T) {
	c := newKafka(t)
	east := newFakeSource(t, 2, 0, 1)
	theirCore := newFakeSource(t, 3, 0, 3)
	ourCore := newFakeSource(t, 5, 0, 4)
	start(t, Config{
		Sources:      []config.Source{sourceConfig("east", east.url, map[string]string{"fabric": "east"}), sourceConfig("core", theirCore.url, nil)},
		MaxStaleness: 100_000 * time.Hour,
		Kafka:        publishing(c, "polls"),
	})
	replica := start(t, Config{
		Sources:      []config.Source{sourceConfig("core", ourCore.url, nil), logSource("log", c, "polls")},
		MaxStaleness: 100_000 * time.Hour,
	})
	eventually(t, "the log's core refused", func() error {
		if !strings.Contains(get(replica, "/metrics"), `fabric_polllog_polls_refused_total{log_source="core",source="log"}`) {
			return fmt.Errorf("not counted")
		}
		return containsSource(replica.Store().Load(), east.expected(t), map[string]string{"fabric": "east"})
	})
	if err := containsSource(replica.Store().Load(), ourCore.expected(t), nil); err != nil {
		t.Errorf("the replica's own core: %v", err)
	}
	if names := servedNames(replica); !slices.Equal(names, []string{"core", "east"}) {
		t.Errorf("replica's sources %v", names)
	}
	part := replica.Store().Load().Parts()[0]
	if _, _, ok := part.SwitchRows("SW-05"); !ok { // only ours has five switches
		t.Errorf("the replica's own core is not what it serves")
	}
}

// TestLogPollKeepsItsTime: publishers whose clocks are ten minutes ahead
// of and behind the replica's: the replica serves each poll with the
// snapshot's own time, not the publisher's clock nor its own, and a
// replica started afterwards replays both.
func TestLogPollKeepsItsTime(t *testing.T) {
	c := newKafka(t)
	follower := start(t, Config{Sources: []config.Source{logSource("log", c, "polls")}, MaxStaleness: 100_000 * time.Hour})
	for i, skew := range []time.Duration{10 * time.Minute, -10 * time.Minute} {
		src := newFakeSource(t, 3, 0, uint64(i))
		want := src.expected(t)
		if time.Until(want.Time()).Abs() < time.Hour {
			t.Fatalf("the fixture's time %v is too near the clock to tell the two apart", want.Time())
		}
		p, err := kafkalog.NewPublisher(kafkalog.PublisherConfig{
			Conn: kafkalog.Conn{Brokers: c.ListenAddrs()}, Topic: "polls", Source: fmt.Sprintf("skewed%d", i), Partitions: 4,
			SessionTimeout: testSession, Registerer: prometheus.NewRegistry(), Now: func() time.Time { return time.Now().Add(skew) },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = p.Run(ctx) })
		t.Cleanup(func() { cancel(); wg.Wait() })
		p.Publish(want)
		eventually(t, fmt.Sprintf("the poll of the publisher %v off", skew), func() error {
			return servedAt(follower, fmt.Sprintf("skewed%d", i), want)
		})
	}
	restarted := start(t, Config{Sources: []config.Source{logSource("log", c, "polls")}, MaxStaleness: 100_000 * time.Hour})
	eventually(t, "a replica started afterwards replays both", func() error {
		if names := servedNames(restarted); len(names) != 2 {
			return fmt.Errorf("sources %v", names)
		}
		return nil
	})
}

// servedAt checks that the named source's part of a's view is want, at
// want's time.
func servedAt(a *Aggregator, name string, want *snapshot.Snapshot) error {
	for _, s := range *a.served.Load() {
		if s.cfg.Name != name {
			continue
		}
		a.mu.Lock()
		part := s.part
		a.mu.Unlock()
		if part == nil || !part.Time().Equal(want.Time()) {
			return fmt.Errorf("%s's part %v, want the snapshot's time %v", name, part, want.Time())
		}
		return containsSource(snapshot.NewView(part, nil), want, nil)
	}
	return fmt.Errorf("no source %s", name)
}

// TestReadyWaitsForTheLog: a replica that serves a fresh snapshot is still
// not ready while its follower has not read the log up to where it ended
// at start: it would answer PromQL with part of the replayed history.
func TestReadyWaitsForTheLog(t *testing.T) {
	src := newFakeSource(t, 2, 0, 1)
	a, err := New(Config{
		Sources:      []config.Source{sourceConfig("core", src.url, nil), logSource("log", nil, "polls")},
		MaxStaleness: 100_000 * time.Hour,
		Logger:       testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.publishPart(a.sources[0], src.expected(t))
	if code, body := readyOf(a); code != 503 || !strings.Contains(body, `source "log": the poll log polls is not read up to its end yet (the brokers not reached yet)`) {
		t.Errorf("with a fresh snapshot, the log not read: %d %s", code, body)
	}
}
