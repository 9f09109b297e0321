package kafkalog

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fabrictelemetry/aggregator/internal/testproc"
)

func parseFlags(t *testing.T, add func(*kingpin.Application) *Options, args ...string) *Options {
	t.Helper()
	app := kingpin.New("test", "")
	o := add(app)
	if _, err := app.Parse(args); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestFlagsTLSAndSASL publishes and follows through brokers that speak
// only TLS and require SCRAM-SHA-256, with the settings of the --kafka.*
// flags; a wrong password leaves the follower not ready, retrying.
func TestFlagsTLSAndSASL(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testproc.SelfSignedCert(t, dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "fabric", "s3cret"))
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := parseFlags(t, AddFlags, "--kafka.brokers="+strings.Join(c.ListenAddrs(), ","),
		"--kafka.tls.enable", "--kafka.tls.ca-file="+certFile,
		"--kafka.sasl.mechanism=SCRAM-SHA-256", "--kafka.sasl.username=fabric", "--kafka.sasl.password-file="+password)
	brokers, err := o.BrokerList()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := o.Conn(brokers)
	if err != nil {
		t.Fatal(err)
	}
	if conn.TLS == nil || conn.SASL == nil || conn.SASL.Name() != "SCRAM-SHA-256" {
		t.Fatalf("conn %+v", conn)
	}
	cfg := publisherConfig(t, c, o.Topic, "sim")
	cfg.Conn = conn
	p, _ := startPublisher(t, cfg)
	var got polls
	fcfg := followerConfig(t, nil, o.Topic, &got)
	fcfg.Conn = conn
	f, _ := startFollower(t, fcfg)
	waitFor(t, "the publisher to become active", p.Active)
	p.Publish(testSnapshot(t, 1))
	waitFor(t, "the poll", func() bool { return got.len() == 1 })
	waitFor(t, "the follower to be ready", f.Ready)
	assertSameSnapshot(t, got.all()[0].Snapshot, testSnapshot(t, 1))

	// The same with a wrong password: never ready, and the log says why.
	if err := os.WriteFile(password, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad, err := o.Conn(brokers)
	if err != nil {
		t.Fatal(err)
	}
	var logs testproc.LockedBuffer
	fcfg = followerConfig(t, nil, o.Topic, &polls{})
	fcfg.Conn, fcfg.Logger = bad, slog.New(slog.NewTextHandler(&logs, nil))
	f, _ = startFollower(t, fcfg)
	waitFor(t, "the follower to log a failed attempt", func() bool {
		return strings.Contains(logs.String(), "Cannot read the poll log; not ready, retrying")
	})
	// (kfake closes the connection on a failed authentication, so the
	// error is an EOF; a real broker answers SASL_AUTHENTICATION_FAILED.)
	if f.Ready() {
		t.Error("ready with a wrong password")
	}
}

// TestFlagsRefused: settings that cannot work stop the start-up with a
// reason rather than failing every connection.
func TestFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kafka.tls.ca-file=" + filepath.Join(dir, "ca.pem")}, "without --kafka.tls.enable"},
		{[]string{"--kafka.tls.enable", "--kafka.tls.ca-file=" + filepath.Join(dir, "missing.pem")}, "missing.pem"},
		{[]string{"--kafka.sasl.username=u"}, "without --kafka.sasl.mechanism"},
		{[]string{"--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username=u"}, "needs --kafka.sasl.username and --kafka.sasl.password-file"},
		{[]string{"--kafka.sasl.mechanism=PLAIN", "--kafka.sasl.username=u", "--kafka.sasl.password-file=" + filepath.Join(dir, "nope")}, "SASL password file"},
	} {
		o := parseFlags(t, AddFlags, tc.args...)
		if _, err := o.Conn([]string{"127.0.0.1:9092"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
	for _, s := range []string{"", "localhost", "127.0.0.1:9092,", ":9092", "h:0", "h:65536", "h:x"} {
		if _, err := ParseBrokers(s); err == nil {
			t.Errorf("brokers %q accepted", s)
		}
	}
	if b, err := ParseBrokers("a:1, b:2"); err != nil || strings.Join(b, ",") != "a:1,b:2" {
		t.Errorf("brokers %v, %v", b, err)
	}
	if o := parseFlags(t, AddProducerFlags); o.Topic != DefaultTopic || o.Source != "simulator" || o.Partitions != DefaultPartitions || o.Brokers != "" {
		t.Errorf("the simulator's defaults: %+v", o)
	}
}
