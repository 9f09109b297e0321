package aggregator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
)

// The poll log (docs/poll-log.md, docs/scale-out.md): with --kafka.publish
// every HTTP source's accepted polls are written to a Kafka topic by a
// kafkalog.Publisher, and a kafka:// source follows such a topic with a
// kafkalog.Follower (or, with ?group=, a kafkalog.GroupFollower: see
// partitioned.go). The polls a follower reads are of the sources the
// publishers named: each of them becomes a source of this aggregator, with
// its own part of the view, history and self-metrics, created when its
// first poll arrives.

// feed is a kafka:// source: a follower of a poll log.
type feed struct {
	cfg    config.Source
	topic  string
	replay time.Duration
	// follower reads every partition; group, in partitioned mode (a
	// ?group= URL), those the group assigns. One of the two is set.
	follower *kafkalog.Follower
	group    *kafkalog.GroupFollower
	// sources are the sources learnt from the log, by their names there;
	// nil for a name refused. Owned by the follower's goroutine.
	sources map[string]*source
}

// run follows the log until ctx is done.
func (f *feed) run(ctx context.Context) error {
	if f.group != nil {
		return f.group.Run(ctx)
	}
	return f.follower.Run(ctx)
}

// ready reports whether the follower serves what it must, and why not.
func (f *feed) ready() (bool, string) {
	if f.group != nil {
		return f.groupReady()
	}
	if f.follower.Ready() {
		return true, ""
	}
	return false, fmt.Sprintf("the poll log %s is not read up to its end yet (%s)", f.topic, f.behind())
}

// behind says how far the follower is behind the log, over every
// partition, for /-/ready.
func (f *feed) behind() string {
	lag := f.follower.Lag()
	if len(lag) == 0 {
		return "the brokers not reached yet"
	}
	var n int64
	for _, l := range lag {
		n += max(l, 0)
	}
	return fmt.Sprintf("%d records behind", n)
}

// kafkaConns returns the connection settings of the publisher (under "")
// and of every kafka:// source (under its name), with the --kafka.* TLS
// and SASL: certificate and password files are read now, so that a
// mistake stops the start-up.
func (a *Aggregator) kafkaConns() (map[string]kafkalog.Conn, error) {
	o := a.cfg.Kafka
	conns := map[string]kafkalog.Conn{}
	switch {
	case o.Publish && o.Brokers == "":
		return nil, errors.New("--kafka.publish needs --kafka.brokers")
	case o.Publish:
		brokers, err := o.BrokerList()
		if err != nil {
			return nil, fmt.Errorf("--kafka.brokers: %w", err)
		}
		if conns[""], err = o.Conn(brokers); err != nil {
			return nil, err
		}
	case o.Brokers != "":
		a.cfg.Logger.Warn("--kafka.brokers is set without --kafka.publish: nothing is published (a kafka:// source names its own brokers)")
	}
	for _, sc := range a.cfg.Sources {
		if !sc.Kafka() {
			continue
		}
		u, err := config.ParseKafkaURL(sc.URL)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", sc.Name, err)
		}
		if conns[sc.Name], err = o.Conn(u.Brokers); err != nil {
			return nil, fmt.Errorf("source %q: %w", sc.Name, err)
		}
	}
	return conns, nil
}

// newPublisher is the publisher of an HTTP source's polls. The topic it
// creates keeps records as long as the query API keeps history: what a
// replica replays.
func (a *Aggregator) newPublisher(name string, conn kafkalog.Conn) (*kafkalog.Publisher, error) {
	o := a.cfg.Kafka
	if o.Partitions < 1 || o.ReplicationFactor < 0 || o.SessionTimeout <= 0 {
		return nil, errors.New("--kafka.partitions and --kafka.session-timeout must be positive, --kafka.replication-factor not negative")
	}
	p, err := kafkalog.NewPublisher(kafkalog.PublisherConfig{
		Conn:              conn,
		Topic:             o.Topic,
		Source:            name,
		Partitions:        o.Partitions,
		ReplicationFactor: o.ReplicationFactor,
		Retention:         a.replay(),
		SessionTimeout:    o.SessionTimeout,
		Logger:            a.cfg.Logger.With("component", "polllog"),
		Registerer:        a.exp.Registry(),
	})
	if err != nil {
		return nil, fmt.Errorf("source %q: poll log publisher: %w", name, err)
	}
	return p, nil
}

// replay is how far back a follower reads the log when it starts, and how
// long a created topic keeps it: the query API's retention.
func (a *Aggregator) replay() time.Duration {
	return cmp.Or(a.cfg.Query.Retention, history.DefaultRetention)
}

// newFeed makes a kafka:// source's follower.
func (a *Aggregator) newFeed(sc config.Source, conn kafkalog.Conn) (*feed, error) {
	u, err := config.ParseKafkaURL(sc.URL)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", sc.Name, err)
	}
	topic := u.Topic
	if a.refused == nil {
		a.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: schema.Namespace, Subsystem: "polllog", Name: "polls_refused_total",
			Help: "Complete polls read from the poll log and dropped because their source's name (log_source) is taken by a configured HTTP source or by another poll log's source.",
		}, []string{"source", "log_source"})
		a.exp.Registry().MustRegister(a.refused)
	}
	f := &feed{cfg: sc, topic: topic, replay: a.replay(), sources: map[string]*source{}}
	if u.Group != "" {
		return f, a.newGroupFollower(f, u.Group, conn)
	}
	f.follower, err = kafkalog.NewFollower(kafkalog.FollowerConfig{
		Conn:       conn,
		Topic:      topic,
		Name:       sc.Name,
		Replay:     f.replay,
		Table:      a.cfg.Schema,
		OnPoll:     func(p *polllog.Poll) { a.applyLogPoll(f, p) },
		Logger:     a.cfg.Logger.With("component", "polllog"),
		Registerer: a.exp.Registry(),
	})
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", sc.Name, err)
	}
	return f, nil
}

// applyLogPoll runs in f's follower for every complete poll it reads: the
// poll's source (created at its first poll) gets the poll's snapshot as
// its part of the view and its history, as an accepted HTTP poll does,
// with the snapshot's own time: the replica's clock plays no part.
func (a *Aggregator) applyLogPoll(f *feed, p *polllog.Poll) {
	src := a.logSource(f, p.Source)
	if src == nil {
		a.refused.WithLabelValues(f.cfg.Name, p.Source).Inc()
		return
	}
	start := a.now()
	if !a.publishPart(src, p.Snapshot) {
		return
	}
	swap := a.now().Sub(start)
	a.observe(ingest.Cycle{Source: p.Source, Start: start, Swap: swap, Total: swap, Bytes: p.Bytes, Snapshot: p.Snapshot})
}

// logSource returns the source of f's log of that name, made at its first
// poll; nil for a name refused.
func (a *Aggregator) logSource(f *feed, name string) *source {
	src, known := f.sources[name]
	if !known {
		src = a.addLogSource(f, name)
		f.sources[name] = src
	}
	return src
}

// addLogSource makes a source learnt from f's log one of the served
// sources, or refuses it (nil) when its name is taken: two sources of one
// name would be one series set fed by two writers.
func (a *Aggregator) addLogSource(f *feed, name string) *source {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range *a.served.Load() {
		if s.cfg.Name != name {
			continue
		}
		by := "a configured HTTP source"
		if s.feed != nil {
			by = fmt.Sprintf("the poll log of source %q", s.feed.cfg.Name)
		}
		a.cfg.Logger.Error("Poll log source refused: its name is taken; its polls are dropped", "source_name", f.cfg.Name,
			"log_source", name, "taken_by", by)
		return nil
	}
	sc := config.Source{Name: name, URL: f.cfg.URL, Interval: f.cfg.Interval}
	src := &source{cfg: sc, feed: f}
	a.exp.AddSource(name)
	if f.group == nil {
		src.history = a.newHistory(name)
		a.exp.AddHistory(name, src.history)
		a.histories.Add(src.history)
	} else {
		src.partitions = &partitionHistories{}
		src.partitions.list.Store(&[]*history.History{})
	}
	served := append(slices.Clone(*a.served.Load()), src)
	a.served.Store(&served)
	a.cfg.Logger.Info("New source from the poll log", "source_name", f.cfg.Name, "log_source", name, "topic", f.topic)
	return src
}
