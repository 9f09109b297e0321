// Package kafkalog moves the poll log through Kafka with franz-go: a
// Publisher writes each accepted poll of one source to a topic in one
// transaction, and any number of Followers read every partition with
// read-committed isolation and rebuild the same snapshots with a
// polllog.Assembler; or GroupFollowers, the members of one consumer group,
// divide the partitions among them, each serving its partitions' switches.
// Kafka's own coordination keeps one publisher per source active: a
// consumer group over a one-partition lease topic elects it, and the
// transactional ID shared by every publisher of the source fences a
// zombie. docs/poll-log.md describes the semantics.
package kafkalog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Conn says how to reach the brokers; every client of a Publisher or
// Follower is made from it.
type Conn struct {
	Brokers []string
	TLS     *tls.Config    // nil: plaintext
	SASL    sasl.Mechanism // nil: no authentication; see SASLMechanism
	// ClientOpts are appended to the options of every client, after the
	// package's own: for settings this package has no field for.
	ClientOpts []kgo.Opt
}

func (c Conn) opts(logger *slog.Logger) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.WithLogger(kgoLogger{logger}),
		kgo.DialTimeout(5 * time.Second),
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	return append(opts, c.ClientOpts...)
}

func (c Conn) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("no Kafka brokers")
	}
	return nil
}

// SASLMechanism returns the SASL mechanism of a name as Kafka spells it
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) for a user and password.
func SASLMechanism(name, user, password string) (sasl.Mechanism, error) {
	switch strings.ToUpper(name) {
	case "PLAIN":
		return plain.Auth{User: user, Pass: password}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: user, Pass: password}.AsSha256Mechanism(), nil
	case "SCRAM-SHA-512":
		return scram.Auth{User: user, Pass: password}.AsSha512Mechanism(), nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", name)
}

// kgoLogger passes franz-go's log lines to slog: its warnings and errors
// at their level, its info and debug lines at debug, since it logs every
// connection and rebalance at info.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	switch {
	case k.l.Enabled(context.Background(), slog.LevelDebug):
		return kgo.LogLevelDebug
	case k.l.Enabled(context.Background(), slog.LevelWarn):
		return kgo.LogLevelWarn
	}
	return kgo.LogLevelError
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	k.l.Log(context.Background(), l, "kafka client: "+msg, keyvals...)
}

// topicSpec is a topic a publisher creates when it is missing.
type topicSpec struct {
	name       string
	partitions int32
	configs    map[string]*string
}

// ensureTopic creates a missing topic and returns its partition count,
// which for an existing topic is the one it has. replication 0 means 3,
// or the number of brokers when fewer.
func ensureTopic(ctx context.Context, adm *kadm.Client, spec topicSpec, replication int) (int, error) {
	if n, err := partitionCount(ctx, adm, spec.name); err == nil || !errors.Is(err, kerr.UnknownTopicOrPartition) {
		return n, err
	}
	if replication == 0 {
		brokers, err := adm.ListBrokers(ctx)
		if err != nil {
			return 0, fmt.Errorf("listing brokers: %w", err)
		}
		replication = min(3, len(brokers))
	}
	_, err := adm.CreateTopic(ctx, spec.partitions, int16(replication), spec.configs, spec.name)
	switch {
	case err == nil:
		return int(spec.partitions), nil
	case errors.Is(err, kerr.TopicAlreadyExists): // created by another publisher meanwhile
		return partitionCount(ctx, adm, spec.name)
	}
	return 0, fmt.Errorf("creating topic %s: %w", spec.name, err)
}

// partitionCount returns how many partitions a topic has; a missing topic
// is kerr.UnknownTopicOrPartition.
func partitionCount(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	topics, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("describing topic %s: %w", topic, err)
	}
	d, ok := topics[topic]
	switch {
	case !ok:
		return 0, fmt.Errorf("topic %s: %w", topic, kerr.UnknownTopicOrPartition)
	case d.Err != nil:
		return 0, fmt.Errorf("topic %s: %w", topic, d.Err)
	case len(d.Partitions) == 0:
		return 0, fmt.Errorf("topic %s has no partitions: %w", topic, kerr.UnknownTopicOrPartition)
	}
	return len(d.Partitions), nil
}

// backoff is an exponential backoff with jitter, from 100ms to max.
type backoff struct {
	max   time.Duration
	tries int
}

func (b *backoff) next() time.Duration {
	d := 100 * time.Millisecond << min(b.tries, 10)
	b.tries++
	d = min(d, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset() { b.tries = 0 }

// sleep waits d or until ctx is done, and reports whether ctx is alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
