package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/simulator"
)

// pollLog writes the simulator's snapshots to a poll log topic: each
// /counters body, parsed by the aggregator's own parser, is the snapshot
// an aggregator polling /counters would publish (the producer → queue →
// aggregator picture of the original description, without the poll).
type pollLog struct {
	opts   *kafkalog.Options
	pub    *kafkalog.Publisher
	parser *ingest.Parser
	logger *slog.Logger
	ticked chan struct{} // a token when the simulator has a new snapshot
}

func newPollLog(o *kafkalog.Options, logger *slog.Logger) (*pollLog, error) {
	brokers, err := o.BrokerList()
	if err != nil {
		return nil, err
	}
	conn, err := o.Conn(brokers)
	if err != nil {
		return nil, err
	}
	logger = logger.With("component", "polllog")
	pub, err := kafkalog.NewPublisher(kafkalog.PublisherConfig{
		Conn: conn, Topic: o.Topic, Source: o.Source, Partitions: o.Partitions,
		SessionTimeout: o.SessionTimeout, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	return &pollLog{
		opts:   o,
		pub:    pub,
		parser: ownBodyParser(),
		logger: logger,
		ticked: make(chan struct{}, 1),
	}, nil
}

// ownBodyParser parses the simulator's own bodies: the aggregator's
// parser without a source's limits, which guard an aggregator against a
// hostile source and would refuse a fabric larger than the aggregator's
// defaults admit (10,000 switches × 64 ports is 10.9 million values, over
// the default sample limit), while the simulator only reads what it wrote.
func ownBodyParser() *ingest.Parser {
	p := ingest.NewFormatParser(schema.Default(), ingest.FormatMatrix)
	p.Limits = ingest.Limits{}
	return p
}

// tick is the simulator's OnTick: it must not block, so it leaves a token
// (the newest snapshot is the one written when ticks come faster than
// they are parsed).
func (l *pollLog) tick() {
	select {
	case l.ticked <- struct{}{}:
	default:
	}
}

// start runs the publisher and writes the current snapshot and each new
// one until ctx is done or the returned stop is called, which waits for
// the publisher to leave its lease group.
func (l *pollLog) start(ctx context.Context, sim *simulator.Simulator) (stop func()) {
	l.logger.Info("Writing each snapshot to the poll log", "brokers", l.opts.Brokers, "topic", l.opts.Topic, "source_name", l.opts.Source)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.pub.Run(ctx) })
	wg.Go(func() {
		for {
			l.write(sim.Body())
			select {
			case <-ctx.Done():
				return
			case <-l.ticked:
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// write parses a /counters body and queues its snapshot for the log.
func (l *pollLog) write(body []byte) {
	s, err := l.parser.Parse(body, time.Now())
	if err != nil {
		// The simulator's good body always parses; this would be a bug.
		l.logger.Error("Snapshot not written to the poll log: its body does not parse", "err", err)
		return
	}
	l.pub.Publish(s)
}
