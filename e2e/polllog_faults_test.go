package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/internal/testproc"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
)

// The poll log's faults at the binaries' level (docs/reliability.md); the
// kafkalog and polllog packages test the rest on their own.

// TestPollLogNoPermission: brokers that speak only TLS and require SCRAM,
// with ACLs. The publisher, a superuser, writes; a replica whose user may
// not read the topic is not ready and logs the authorization failure,
// retrying; so does a publisher whose user may not describe it, which
// keeps serving its own source. Once an operator grants the reader Read
// and Describe on the topic, the replica catches up without a restart.
func TestPollLogNoPermission(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, pool := testproc.SelfSignedCert(t, dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := newKafka(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-secret"), kfake.User("SCRAM-SHA-512", "reader", "reader-secret"))
	secret := func(name, password string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tlsArgs := []string{"--kafka.tls.enable", "--kafka.tls.ca-file=" + certFile}
	admin := append([]string{"--kafka.sasl.mechanism=SCRAM-SHA-256", "--kafka.sasl.username=admin",
		"--kafka.sasl.password-file=" + secret("admin", "admin-secret")}, tlsArgs...)
	reader := append([]string{"--kafka.sasl.mechanism=SCRAM-SHA-512", "--kafka.sasl.username=reader",
		"--kafka.sasl.password-file=" + secret("reader", "reader-secret")}, tlsArgs...)

	sim := StartSimulator(t, "--switches=4", "--interval=200ms", "--incident-rate=0")
	pub := StartAggregator(t, publisherArgs(sim, brokersOf(c), "polls", 200*time.Millisecond, admin...)...)
	waitMetric(t, pub, 30*time.Second, "fabric_polllog_polls_written_total", map[string]string{"source": "default"}, atLeast(1))

	replica := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 200*time.Millisecond, reader...)...)
	line, _ := replica.Logs.WaitFor(t, 0, 1, 30*time.Second, "the authorization failure", MsgIs("Cannot read the poll log; not ready, retrying"))
	if !strings.Contains(line.Str("err"), "TOPIC_AUTHORIZATION_FAILED") {
		t.Errorf("the log line does not name the authorization failure: %s", line.Raw)
	}
	notReady(t, replica)

	other := StartAggregator(t, publisherArgs(sim, brokersOf(c), "polls", 200*time.Millisecond, reader...)...)
	line, _ = other.Logs.WaitFor(t, 0, 1, 30*time.Second, "the publisher's authorization failure",
		MsgIs("Kafka unreachable or topic unusable; polls are buffered, retrying"))
	if !strings.Contains(line.Str("err"), "AUTHORIZATION_FAILED") {
		t.Errorf("the publisher's log line does not name the authorization failure: %s", line.Raw)
	}
	WaitReady(t, other, 20*time.Second) // its own source is served all the same
	other.Stop(t)

	grant(t, c, pool, kadm.NewACLs().Allow("User:reader").Topics("polls").Operations(kadm.OpRead, kadm.OpDescribe))
	WaitReady(t, replica, 60*time.Second)
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		return sameSnapshot(GetList(t, replica, ""), GetList(t, pub, ""))
	})
}

// grant creates ACLs as the superuser.
func grant(t *testing.T, c *kfake.Cluster, pool *x509.CertPool, acls *kadm.ACLBuilder) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	results, err := kadm.NewClient(cl).CreateACLs(ctx, acls.ResourcePatternType(kadm.ACLPatternLiteral))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("creating ACL %+v: %v", r, r.Err)
		}
	}
}

// TestPollLogBadRecords writes, beside the simulator's polls, records no
// publisher would: one of an unknown format version, garbage, a truncated
// record, and the data record of a poll of the simulator's source whose
// other records never come. The replica rejects each with its reason, in
// fabric_polllog_rejected_total, and serves whole polls of the simulator
// throughout, never the lone record's values nor a mix.
func TestPollLogBadRecords(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	sim := StartSimulator(t, "--switches=6", "--interval=300ms", "--incident-rate=0",
		"--kafka.brokers="+brokersOf(c), "--kafka.topic=polls", "--kafka.partitions=4")
	replica := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 300*time.Millisecond)...)
	WaitReady(t, replica, 30*time.Second)
	matchesSimulator(t, sim, replica, 20*time.Second)

	// While the bad records arrive, every answer is a whole poll of the
	// simulator's six switches, never the lone record's SW-01 value.
	const planted = "424242424242"
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			r, err := TryDo(ctx, http.MethodGet, replica.URL+"/telemetry/ListMetrics")
			if err != nil {
				continue
			}
			a, err := decodeList(r.Body)
			if err != nil || a.SwitchCount != 6 || strings.Contains(string(r.Body), planted) {
				t.Errorf("an answer that is not a whole poll of the simulator: %d %.200s", r.Status, r.Body)
				return
			}
		}
	})
	defer func() { stop(); wg.Wait() }()

	now := time.Now()
	snap, err := ingest.NewFormatParser(schema.Default(), ingest.FormatMatrix).
		Parse(fmt.Appendf(nil, "switch_id,timestamp,Rx_Bytes\nSW-01,%d,%s\n", now.UnixMilli(), planted), now)
	if err != nil {
		t.Fatal(err)
	}
	enc := polllog.Encoder{Partitions: 4}
	// Its seq is the clock now: above every poll applied so far, below
	// the simulator's next.
	recs, err := enc.Encode(polllog.PollID{Source: "simulator", Seq: uint64(now.UnixMicro()), PublishTime: now}, snap)
	if err != nil {
		t.Fatal(err)
	}
	lone := recs[0] // the data record; its markers are never written
	unknownVersion := append([]byte(nil), lone.Value...)
	unknownVersion[4] = polllog.Version + 1
	bad := []*kgo.Record{
		{Partition: lone.Partition, Key: lone.Key, Value: unknownVersion},
		{Partition: 0, Key: []byte("junk"), Value: []byte("not a poll log record at all")},
		{Partition: lone.Partition, Key: lone.Key, Value: lone.Value[:len(lone.Value)-3]},
		{Partition: lone.Partition, Key: lone.Key, Value: lone.Value},
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("polls"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), bad...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	rejected := func(reason string) map[string]string { return map[string]string{"source": "default", "reason": reason} }
	waitMetric(t, replica, 20*time.Second, "fabric_polllog_rejected_total", rejected("unknown_version"), atLeast(1))
	waitMetric(t, replica, 20*time.Second, "fabric_polllog_rejected_total", rejected("corrupt"), atLeast(2))
	waitMetric(t, replica, 20*time.Second, "fabric_polllog_rejected_total", rejected("incomplete"), atLeast(1))
	replica.Logs.WaitFor(t, 0, 4, 10*time.Second, "a warning per rejection", MsgIs("Poll log record or poll rejected; the last good poll stays"))
	matchesSimulator(t, sim, replica, 20*time.Second)
}

// TestPollLogClockSkew: the publisher's source runs a year ahead, then
// twenty minutes behind. The source-clock clamp applies where the poll is
// taken, at the publisher: while the source is ahead, the replica serves
// the publisher's poll time; once behind, the source's own time, twenty
// minutes old, with its age, and says it is not ready for it. The
// replica's clock never stamps a poll.
func TestPollLogClockSkew(t *testing.T) {
	t.Parallel()
	c := newKafka(t)
	src := &clockSource{ahead: 365 * 24 * time.Hour, served: map[string]bool{}}
	srv := httptest.NewServer(src)
	t.Cleanup(srv.Close)
	started := time.Now()
	pub := StartAggregator(t, "--source.url="+srv.URL, "--source.interval=100ms", "--source.timeout=2s",
		"--kafka.brokers="+brokersOf(c), "--kafka.topic=polls", "--kafka.publish", "--kafka.partitions=4")
	replica := StartAggregator(t, replicaArgs(brokersOf(c), "polls", 100*time.Millisecond)...)
	WaitReady(t, replica, 30*time.Second)
	var ts string
	Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		var err error
		if ts, err = listTimestamp(replica); err != nil {
			return err
		}
		served, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			return err
		}
		if served.Before(started.Add(-time.Second)) || served.After(time.Now().Add(time.Second)) || src.servedText(ts) {
			return fmt.Errorf("replica serves %s while the source is a year ahead", ts)
		}
		return nil
	})
	waitMetric(t, pub, 10*time.Second, "fabric_ingest_clock_skew_clamped_total", map[string]string{"source": "default"}, atLeast(1))

	src.setAhead(-20 * time.Minute)
	Eventually(t, 20*time.Second, 20*time.Millisecond, func() error {
		r, err := TryDo(context.Background(), http.MethodGet, replica.URL+"/telemetry/ListMetrics")
		if err != nil {
			return err
		}
		var a struct {
			Timestamp  string  `json:"timestamp"`
			AgeSeconds float64 `json:"age_seconds"`
		}
		if err := json.Unmarshal(r.Body, &a); err != nil {
			return err
		}
		if !src.servedText(a.Timestamp) || a.AgeSeconds < 19*60 {
			return fmt.Errorf("replica serves %s, %vs old; want one of the source's times, twenty minutes old", a.Timestamp, a.AgeSeconds)
		}
		return nil
	})
	r := Get(t, replica.URL+"/-/ready")
	if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "old") {
		t.Errorf("/-/ready with twenty-minute-old data: %d %s", r.Status, r.Body)
	}
}
