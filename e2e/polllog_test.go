package e2e

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

// The poll log end to end: the real binaries publish to and follow a kfake
// cluster of three brokers started in the test process, on loopback
// (docs/scale-out.md). Replicas follow the topic "polls" of four
// partitions.

// newKafka starts a 3-broker kfake cluster for one test. Groups may have
// session timeouts from 100ms, so that a standby takes over in seconds.
func newKafka(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func brokersOf(c *kfake.Cluster) string { return strings.Join(c.ListenAddrs(), ",") }

// replicaArgs are the flags of an aggregator following topic on brokers,
// which expects a poll every interval (and is ready while its data is
// less than a minute old, unless extra says otherwise).
func replicaArgs(brokers, topic string, interval time.Duration, extra ...string) []string {
	args := []string{"--source.url=kafka://" + brokers + "/" + topic, "--source.interval=" + interval.String()}
	if !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "--source.max-staleness") }) {
		args = append(args, "--source.max-staleness=1m")
	}
	return append(args, extra...)
}

// publisherArgs are the flags of an aggregator polling the simulator and
// publishing its polls to topic on brokers.
func publisherArgs(sim *Process, brokers, topic string, interval time.Duration, extra ...string) []string {
	return append([]string{"--source.url=" + sim.URL + "/counters", "--source.interval=" + interval.String(), "--source.timeout=2s",
		"--kafka.brokers=" + brokers, "--kafka.topic=" + topic, "--kafka.publish", "--kafka.partitions=4"}, extra...)
}

// metricValue is one series of an aggregator's /metrics.
func metricValue(agg *Process, metric string, labels map[string]string) (float64, error) {
	v, err := scrapeValue(agg, metric, labels)
	if err != nil {
		return 0, err
	}
	f, _ := v.Float64()
	return f, nil
}

// waitMetric waits until a series of agg's /metrics satisfies ok.
func waitMetric(t *testing.T, agg *Process, timeout time.Duration, metric string, labels map[string]string, ok func(float64) bool) float64 {
	t.Helper()
	var got float64
	Eventually(t, timeout, 50*time.Millisecond, func() error {
		v, err := metricValue(agg, metric, labels)
		if err != nil {
			return err
		}
		if got = v; !ok(v) {
			return fmt.Errorf("%s%v = %v", metric, labels, v)
		}
		return nil
	})
	return got
}

func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }

// applied is how many polls of source an aggregator has applied: accepted
// HTTP polls, or polls read from the log.
func applied(agg *Process, source string) (float64, error) {
	return metricValue(agg, "fabric_ingest_total", map[string]string{"source": source, "result": "success"})
}

// dataSeries is the switch data of a scrape of /metrics: every series
// with a switch_id label, and the REST timestamp read before and after it,
// so that two scrapes are known to be of the same snapshot.
func dataSeries(agg *Process) (series, string, error) {
	before, err := listTimestamp(agg)
	if err != nil {
		return nil, "", err
	}
	all, err := scrapeSeries(agg.URL)
	if err != nil {
		return nil, "", err
	}
	after, err := listTimestamp(agg)
	if err != nil {
		return nil, "", err
	}
	if before != after {
		return nil, "", fmt.Errorf("a poll arrived during the scrape (%s, then %s)", before, after)
	}
	data := series{}
	for k, v := range all {
		if strings.Contains(k, `switch_id="`) {
			data[k] = v
		}
	}
	return data, before, nil
}

func listTimestamp(agg *Process) (string, error) {
	r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/telemetry/ListMetrics?switch_id=SW-01")
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		return "", fmt.Errorf("ListMetrics: %d %s", r.Status, r.Body)
	}
	a, err := decodeList(r.Body)
	if err != nil {
		return "", err
	}
	return a.Timestamp, nil
}

// matchesSimulator waits until agg serves the simulator's current body,
// value for value.
func matchesSimulator(t *testing.T, sim, agg *Process, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, 50*time.Millisecond, func() error {
		s, err := FetchSimCSV(context.Background(), sim)
		if err != nil {
			return err
		}
		r, err := TryDo(context.Background(), http.MethodGet, agg.URL+"/telemetry/ListMetrics")
		if err != nil {
			return err
		}
		a, err := decodeList(r.Body)
		if err != nil {
			return fmt.Errorf("%d %s: %w", r.Status, r.Body, err)
		}
		if a.Timestamp != s.TimeText() {
			return fmt.Errorf("%s serves %s, the simulator %s", agg.Name, a.Timestamp, s.TimeText())
		}
		if err := matchesCSV(a, s); err != nil {
			t.Fatalf("%s: %v", agg.Name, err)
		}
		return nil
	})
}

// notReady checks that /-/ready answers 503 naming the poll log.
func notReady(t *testing.T, agg *Process) {
	t.Helper()
	r := Get(t, agg.URL+"/-/ready")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "poll log") {
		t.Errorf("/-/ready: %d %s, want 503 naming the poll log", r.Status, r.Body)
	}
}

// TestPollLogReplicas: the simulator writes each snapshot straight to the
// topic; two replicas follow it. They start before the topic exists: not
// ready, saying so, retrying. Once caught up, each one's ListMetrics and
// GetMetric answers are the simulator's body, value for value, and their
// /metrics data series are equal.
func TestPollLogReplicas(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	r1 := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 500*time.Millisecond)...)
	r2 := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 500*time.Millisecond)...)
	line, _ := r1.Logs.WaitFor(t, 0, 1, 30*time.Second, "the topic missing", MsgIs("Cannot read the poll log; not ready, retrying"))
	if !strings.Contains(line.Str("err"), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("the log line does not say the topic is missing: %s", line.Raw)
	}
	notReady(t, r1)

	sim := StartSimulator(t, "--switches=6", "--interval=500ms", "--incident-rate=0",
		"--kafka.brokers="+brokersOf(c), "--kafka.topic=polls", "--kafka.partitions=4")
	WaitReady(t, r1, 30*time.Second)
	WaitReady(t, r2, 30*time.Second)
	for _, r := range []*Process{r1, r2} {
		matchesSimulator(t, sim, r, 20*time.Second)
		checkGetMetricMatchesSource(t, sim, r, "SW-03", "Rx_Bytes")
		checkGetMetricMatchesSource(t, sim, r, "SW-06", "Latency_Avg_uSec")
	}
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		d1, ts1, err := dataSeries(r1)
		if err != nil {
			return err
		}
		d2, ts2, err := dataSeries(r2)
		if err != nil {
			return err
		}
		if ts1 != ts2 {
			return fmt.Errorf("replicas at %s and %s", ts1, ts2)
		}
		if len(d1) == 0 || !reflect.DeepEqual(d1, d2) {
			t.Fatalf("the replicas' /metrics data at %s differ: %d and %d series", ts1, len(d1), len(d2))
		}
		return nil
	})
	if v, err := metricValue(r1, "fabric_source_up", map[string]string{"source": "simulator"}); err != nil || v != 1 {
		t.Errorf("the replica's source named as in the log: fabric_source_up{source=\"simulator\"} %v, %v", v, err)
	}
}

// TestPollLogBrokerRemoved: an aggregator polls the simulator and
// publishes; two replicas follow. Two of the three brokers are removed,
// one after the other, while polls go on: the replicas keep following, and
// once the source stops, each has applied every poll the publisher
// committed, once, and none was dropped as incomplete or corrupt.
func TestPollLogBrokerRemoved(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	sim := StartSimulator(t, "--switches=4", "--interval=200ms", "--incident-rate=0")
	pub := StartAggregator(t, publisherArgs(sim, brokersOf(c), "polls", 200*time.Millisecond)...)
	r1 := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 200*time.Millisecond)...)
	r2 := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 200*time.Millisecond)...)
	src := map[string]string{"source": "default", "result": "success"}
	for _, partition := range []int32{0, 1} {
		n := waitMetric(t, r1, 30*time.Second, "fabric_ingest_total", src, atLeast(3))
		leader := c.LeaderFor("polls", partition)
		if err := c.RemoveNode(leader); err != nil {
			t.Fatal(err)
		}
		t.Logf("removed broker %d, the leader of partition %d, after %v polls", leader, partition, n)
		for _, r := range []*Process{r1, r2} {
			waitMetric(t, r, 30*time.Second, "fabric_ingest_total", src, atLeast(n+5))
		}
	}

	// The source stops: the publisher accepts no more polls.
	SetMode(t, sim, "ERROR_500")
	waitMetric(t, pub, 10*time.Second, "fabric_ingest_failures_total", map[string]string{"source": "default", "reason": "http_status"}, atLeast(1))
	waitMetric(t, pub, 30*time.Second, "fabric_polllog_buffered_polls", map[string]string{"source": "default"}, func(v float64) bool { return v == 0 })
	written, err := metricValue(pub, "fabric_polllog_polls_written_total", map[string]string{"source": "default"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Process{r1, r2} {
		waitMetric(t, r, 30*time.Second, "fabric_ingest_total", src, func(v float64) bool { return v == written })
		for _, reason := range []string{"incomplete", "corrupt", "unknown_version"} {
			if v, err := metricValue(r, "fabric_polllog_rejected_total", map[string]string{"source": "default", "reason": reason}); err != nil || v != 0 {
				t.Errorf("%s: %v polls rejected as %s (%v)", r.Name, v, reason, err)
			}
		}
		// kfake may answer a fetch after a leader change as if records were
		// lost, and franz-go then reads the partition again from its start:
		// the polls read twice are rejected, never applied twice.
		again, _ := metricValue(r, "fabric_polllog_rejected_total", map[string]string{"source": "default", "reason": "out_of_order"})
		dup, _ := metricValue(r, "fabric_polllog_rejected_total", map[string]string{"source": "default", "reason": "duplicate"})
		t.Logf("%s: %v polls read again rejected as out_of_order, %v as duplicate", r.Name, again, dup)
		a, b := GetList(t, pub, ""), GetList(t, r, "")
		if err := sameSnapshot(a, b); err != nil {
			t.Errorf("%s and the publisher: %v", r.Name, err)
		}
	}
	accepted, _ := applied(pub, "default")
	t.Logf("%v polls committed to the log, %v accepted by the publisher", written, accepted)
}

// TestPollLogStandbyTakesOver: two aggregators poll the same source and
// publish it; one writes, the other stands by. The active one is killed
// (SIGKILL: it never leaves the lease group); the standby takes over once
// the session timeout has passed, and the replica keeps receiving new
// polls, the simulator's own.
func TestPollLogStandbyTakesOver(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	sim := StartSimulator(t, "--switches=4", "--interval=200ms", "--incident-rate=0")
	const session = 3 * time.Second
	args := publisherArgs(sim, brokersOf(c), "polls", 200*time.Millisecond, "--kafka.session-timeout="+session.String())
	active := map[string]string{"source": "default"}
	first := StartAggregator(t, args...)
	waitMetric(t, first, 30*time.Second, "fabric_polllog_publisher_active", active, func(v float64) bool { return v == 1 })
	standby := StartAggregator(t, args...)
	replica := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 200*time.Millisecond)...)
	WaitReady(t, replica, 30*time.Second)
	matchesSimulator(t, sim, replica, 20*time.Second)
	// The standby polls too, and writes nothing.
	waitMetric(t, standby, 20*time.Second, "fabric_ingest_total", map[string]string{"source": "default", "result": "success"}, atLeast(5))
	for _, m := range []string{"fabric_polllog_publisher_active", "fabric_polllog_polls_written_total"} {
		if v, err := metricValue(standby, m, active); err != nil || v != 0 {
			t.Fatalf("standby's %s %v (%v), want 0", m, v, err)
		}
	}

	first.Kill(t)
	killed := time.Now()
	lastBefore, err := listTimestamp(replica)
	if err != nil {
		t.Fatal(err)
	}
	waitMetric(t, standby, 30*time.Second, "fabric_polllog_publisher_active", active, func(v float64) bool { return v == 1 })
	t.Logf("the standby took over %v after the active publisher was killed (session timeout %v)", time.Since(killed).Round(time.Millisecond), session)
	matchesSimulator(t, sim, replica, 20*time.Second)
	if now, _ := listTimestamp(replica); now <= lastBefore {
		t.Errorf("the replica serves %s, no newer than %s before the takeover", now, lastBefore)
	}
	waitMetric(t, standby, 10*time.Second, "fabric_polllog_polls_written_total", active, atLeast(1))
}

// TestPollLogReplicaRestart: a replica that restarts replays the log from
// now minus --query.retention: as soon as it is ready again, query_range
// over the last minutes answers what the publisher, which polled every one
// of those polls itself, answers, sample for sample.
func TestPollLogReplicaRestart(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	sim := StartSimulator(t, "--switches=4", "--interval=100ms", "--incident-rate=0", "--seed=5")
	start := time.Now().Add(-time.Second)
	pub := StartAggregator(t, publisherArgs(sim, brokersOf(c), "polls", 100*time.Millisecond)...)
	args := replicaArgs(brokersOf(c), "polls", 100*time.Millisecond, "--source.max-staleness=10m")
	replica := StartAggregator(t, args...)
	WaitReady(t, replica, 30*time.Second)
	waitMetric(t, replica, 30*time.Second, "fabric_ingest_total", map[string]string{"source": "default", "result": "success"}, atLeast(20))
	replica.Stop(t)

	// The source stops, so that the publisher's history and the log hold
	// the same polls.
	SetMode(t, sim, "ERROR_500")
	waitMetric(t, pub, 10*time.Second, "fabric_ingest_failures_total", map[string]string{"source": "default", "reason": "http_status"}, atLeast(1))
	waitMetric(t, pub, 30*time.Second, "fabric_polllog_buffered_polls", map[string]string{"source": "default"}, func(v float64) bool { return v == 0 })
	end := time.Now()
	queries := []string{"fabric_switch_transmit_bytes_total", "rate(fabric_switch_receive_bytes_total[1s])"}
	const step = 50 * time.Millisecond
	want := map[string][]any{}
	for _, q := range queries {
		res, err := rangeQuery(pub, q, start, end, step)
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 4 {
			t.Fatalf("%s on the publisher: %d series, want one per switch", q, len(res))
		}
		want[q] = res
	}

	restarted := StartAggregator(t, args...)
	WaitReady(t, restarted, 30*time.Second)
	for _, q := range queries {
		got, err := rangeQuery(restarted, q, start, end, step)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want[q]) {
			t.Errorf("%s over the last %v on the restarted replica, as soon as ready:\n got  %v\n want %v", q, end.Sub(start).Round(time.Second), got, want[q])
		}
	}
	if err := sameSnapshot(GetList(t, restarted, ""), GetList(t, pub, "")); err != nil {
		t.Errorf("REST on the restarted replica: %v", err)
	}
}

// TestPollLogBrokersUnreachableAtStart: a replica and a publisher start
// before any broker listens. The replica is not ready and says why in a
// clear log line, without crashing; the publisher serves its source all
// the same. Once the cluster appears on those addresses, the replica
// becomes ready and serves what the publisher does.
func TestPollLogBrokersUnreachableAtStart(t *testing.T) {
	t.Parallel()
	ports, addrs := testproc.FreePorts(t, 3)
	brokers := strings.Join(addrs, ",")
	sim := StartSimulator(t, "--switches=4", "--interval=200ms", "--incident-rate=0")
	replica := StartAggregator(t, replicaArgs(brokers, "polls", 200*time.Millisecond)...)
	pub := StartAggregator(t, publisherArgs(sim, brokers, "polls", 200*time.Millisecond)...)
	line, _ := replica.Logs.WaitFor(t, 0, 1, 30*time.Second, "the brokers unreachable", MsgIs("Cannot read the poll log; not ready, retrying"))
	if line.Str("err") == "" || !strings.Contains(line.Str("brokers"), addrs[0]) || line.Str("level") != "ERROR" {
		t.Errorf("the log line lacks the brokers or the error: %s", line.Raw)
	}
	notReady(t, replica)
	if r := Get(t, replica.URL+"/-/healthy"); r.Status != http.StatusOK {
		t.Errorf("/-/healthy %d", r.Status)
	}
	WaitReady(t, pub, 20*time.Second) // serving its source, Kafka or not

	newKafka(t, kfake.Ports(ports...))
	WaitReady(t, replica, 60*time.Second)
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		return sameSnapshot(GetList(t, replica, ""), GetList(t, pub, ""))
	})
	if n := replica.Logs.Count(0, MsgIs("Poll log caught up; ready")); n != 1 {
		t.Errorf("%d lines saying the replica caught up, want 1", n)
	}
}
