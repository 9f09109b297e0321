package kafkalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Publisher defaults.
const (
	DefaultPartitions       = 16
	DefaultMaxBufferedPolls = 16
	DefaultSessionTimeout   = 10 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
)

// PublisherConfig configures a Publisher for one source.
type PublisherConfig struct {
	Conn
	Topic  string
	Source string // the source's name, unique in the topic
	// Partitions and ReplicationFactor are used when the topic is
	// created; an existing topic keeps its own. ReplicationFactor 0 means
	// 3, or the number of brokers when fewer.
	Partitions        int
	ReplicationFactor int
	// Retention is the created topic's retention.ms; 0 leaves the
	// broker's default. Readers replay at most this far back.
	Retention time.Duration
	// LeaseTopic holds the lease groups' partition and the publishers'
	// checkpoints; "" means Topic + "-lease".
	LeaseTopic string
	// MaxRecordBytes bounds a record value (polllog.DefaultMaxRecordBytes
	// when 0); it must fit the brokers' message.max.bytes.
	MaxRecordBytes int
	// MaxBufferedPolls is how many polls wait while Kafka is unreachable
	// or slow; past it the oldest is dropped.
	MaxBufferedPolls int
	// SessionTimeout is the lease group's: how long after an active
	// publisher dies a standby takes over.
	SessionTimeout time.Duration
	// WriteTimeout bounds one poll's transaction before it is aborted and
	// retried.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	// Now stamps polls with their publish time (and their records with
	// their Kafka timestamp); nil means time.Now.
	Now func() time.Time
}

func (c *PublisherConfig) setDefaults() error {
	if err := c.Conn.validate(); err != nil {
		return err
	}
	if c.Topic == "" || c.Source == "" {
		return errors.New("a publisher needs a topic and a source name")
	}
	if c.MaxRecordBytes != 0 && c.MaxRecordBytes < polllog.MinRecordBytes {
		return fmt.Errorf("max record size %d below %d bytes", c.MaxRecordBytes, polllog.MinRecordBytes)
	}
	c.Partitions = cmp.Or(c.Partitions, DefaultPartitions)
	c.LeaseTopic = cmp.Or(c.LeaseTopic, c.Topic+"-lease")
	c.MaxRecordBytes = cmp.Or(c.MaxRecordBytes, polllog.DefaultMaxRecordBytes)
	c.MaxBufferedPolls = cmp.Or(c.MaxBufferedPolls, DefaultMaxBufferedPolls)
	c.SessionTimeout = cmp.Or(c.SessionTimeout, DefaultSessionTimeout)
	c.WriteTimeout = cmp.Or(c.WriteTimeout, DefaultWriteTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// TransactionalID is the transactional ID of a source's publishers: all
// of them share it, so that the one that becomes active fences the others.
func TransactionalID(topic, source string) string { return topic + "/" + source }

// LeaseGroup is the consumer group whose member holding partition 0 of the
// lease topic is the source's active publisher.
func LeaseGroup(topic, source string) string { return topic + "/" + source + "/lease" }

// Publisher writes one source's accepted polls to the poll log, each in
// one Kafka transaction, while it holds the source's lease; otherwise it
// stands by. Publish never blocks: polls wait in a bounded buffer for the
// background loop that Run runs.
type Publisher struct {
	cfg     PublisherConfig
	logger  *slog.Logger
	metrics *publisherMetrics
	wake    chan struct{}

	mu       sync.Mutex
	queue    []*job
	active   bool
	lease    *lease    // the current one, for the reachability of Kafka
	lastSeq  uint64    // newest seq committed by any publisher of the source, as known
	lastSnap time.Time // snapshot time of that poll
	// termStart is when this publisher last became active: a poll queued
	// before it was polled while standing by.
	termStart time.Time

	// failMidway, a test hook, runs after half of a poll's records are
	// produced; an error aborts the transaction there.
	failMidway func() error
}

type job struct {
	snap     *snapshot.Snapshot
	enqueued time.Time
	id       polllog.PollID // set at the first attempt to write it
	recs     []polllog.Record
}

// NewPublisher checks cfg and returns a Publisher; it connects in Run.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Publisher{
		cfg:     cfg,
		logger:  cfg.Logger.With("source", cfg.Source, "topic", cfg.Topic),
		metrics: newPublisherMetrics(cfg.Registerer),
		wake:    make(chan struct{}, 1),
	}
	p.metrics.addSource(cfg.Source)
	return p, nil
}

// Publish queues an accepted poll for the log and returns at once. When
// the buffer is full the oldest poll is dropped, counted and logged.
func (p *Publisher) Publish(s *snapshot.Snapshot) {
	p.mu.Lock()
	p.queue = append(p.queue, &job{snap: s, enqueued: time.Now()})
	if len(p.queue) > p.cfg.MaxBufferedPolls {
		p.dropLocked(p.queue[0], p.overflowReason())
		p.queue = p.queue[1:]
	}
	p.metrics.buffered.WithLabelValues(p.cfg.Source).Set(float64(len(p.queue)))
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// overflowReason says why a full buffer drops a poll: a standby that
// reaches Kafka keeps only the newest polls for a takeover and drops the
// rest as a matter of course; an active publisher, or one cut off from
// Kafka, drops polls the log should have had.
func (p *Publisher) overflowReason() string {
	if !p.active && p.lease != nil && p.lease.reachable(p.cfg.SessionTimeout) {
		return dropStandby
	}
	return DropBufferFull
}

// dropStandby is a standby's routine trim of its buffer; not counted.
const dropStandby = "standby"

func (p *Publisher) dropLocked(j *job, reason string) {
	if reason == dropStandby {
		return
	}
	p.metrics.dropped.WithLabelValues(p.cfg.Source, reason).Inc()
	p.logger.Warn("Poll dropped from the poll log", "reason", reason, "snapshot_time", j.snap.TimeText(), "buffered", len(p.queue))
}

// Active reports whether this publisher holds the source's lease now.
func (p *Publisher) Active() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active
}

func (p *Publisher) setActive(active bool) {
	p.mu.Lock()
	p.active = active
	p.mu.Unlock()
	v := 0.0
	if active {
		v = 1
	}
	p.metrics.active.WithLabelValues(p.cfg.Source).Set(v)
}

// Run creates the topics when missing, joins the lease group and, while
// it holds the lease, writes the queued polls. It returns when ctx is
// canceled, leaving the group so that a standby takes over at once.
// Kafka being unreachable is retried, never returned.
func (p *Publisher) Run(ctx context.Context) error {
	partitions, err := p.setup(ctx)
	if err != nil {
		return nil // ctx canceled
	}
	enc := polllog.Encoder{Partitions: partitions, MaxRecordBytes: p.cfg.MaxRecordBytes}
	b := backoff{max: 30 * time.Second}
	for ctx.Err() == nil {
		err := p.runLease(ctx, &enc)
		if ctx.Err() != nil {
			break
		}
		p.logger.Warn("Rejoining the publishers' lease group", "err", err)
		sleep(ctx, b.next())
	}
	return nil
}

// setup creates the data and lease topics when missing, retrying until
// Kafka answers, and returns the data topic's partition count.
func (p *Publisher) setup(ctx context.Context) (int, error) {
	b := backoff{max: 30 * time.Second}
	for {
		n, err := p.ensureTopics(ctx)
		if err == nil {
			p.logger.Info("Poll log ready", "partitions", n, "lease_topic", p.cfg.LeaseTopic)
			return n, nil
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		p.logger.Error("Kafka unreachable or topic unusable; polls are buffered, retrying", "brokers", p.cfg.Brokers, "err", err)
		if !sleep(ctx, b.next()) {
			return 0, ctx.Err()
		}
	}
}

func (p *Publisher) ensureTopics(ctx context.Context) (int, error) {
	cl, err := kgo.NewClient(p.cfg.opts(p.logger)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	data := topicSpec{name: p.cfg.Topic, partitions: int32(p.cfg.Partitions), configs: map[string]*string{}}
	if p.cfg.Retention > 0 {
		ms := strconv.FormatInt(p.cfg.Retention.Milliseconds(), 10)
		data.configs["retention.ms"] = &ms
	}
	n, err := ensureTopic(ctx, adm, data, p.cfg.ReplicationFactor)
	if err != nil {
		return 0, err
	}
	if _, err := ensureTopic(ctx, adm, topicSpec{name: p.cfg.LeaseTopic, partitions: 1}, p.cfg.ReplicationFactor); err != nil {
		return 0, err
	}
	return n, nil
}

// errFenced is a term ended because another publisher of the source
// initialized the transactional ID after this one: it holds the lease now.
var errFenced = errors.New("fenced by a newer publisher of the source")

// runLease joins the lease group and runs a term whenever it holds the
// lease, until ctx is canceled or this publisher is fenced (then it leaves
// and rejoins as a new member, standing by behind the one that fenced it).
func (p *Publisher) runLease(ctx context.Context, enc *polllog.Encoder) error {
	l, err := newLease(p.cfg.Conn, LeaseGroup(p.cfg.Topic, p.cfg.Source), p.cfg.LeaseTopic, p.cfg.SessionTimeout, p.logger)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.lease = l
	p.mu.Unlock()
	defer l.close()
	b := backoff{max: 30 * time.Second}
	for {
		termCtx, end, ok := l.begin(ctx)
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-l.changed:
			}
			continue
		}
		err := p.term(termCtx, enc)
		released := termCtx.Err() != nil
		end()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errFenced):
			return err
		case err != nil && !released:
			p.logger.Warn("Poll log writer failed; starting a new one", "err", err)
			if !sleep(ctx, b.next()) {
				return nil
			}
		default:
			b.reset()
		}
	}
}

// term is one stretch as the active publisher: a fresh transactional
// producer (whose initialization fences every older one), the newest
// checkpoint read back, then the queued polls written one transaction
// each, until ctx is canceled (the lease is released) or a write fails.
func (p *Publisher) term(ctx context.Context, enc *polllog.Encoder) error {
	kcl, err := kgo.NewClient(p.producerOpts()...)
	if err != nil {
		return err
	}
	cl := &producer{Client: kcl, close: sync.OnceFunc(kcl.Close)}
	defer cl.close()
	if err := p.fence(ctx, cl.Client); err != nil {
		return err
	}
	p.mu.Lock()
	p.termStart = time.Now()
	p.mu.Unlock()
	p.setActive(true)
	defer p.setActive(false)
	p.metrics.takeovers.WithLabelValues(p.cfg.Source).Inc()
	p.logger.Info("Active publisher of the source", "last_seq", p.lastSeq)
	for {
		j := p.next(ctx)
		if j == nil {
			return nil
		}
		if err := p.write(ctx, cl, enc, j); err != nil {
			p.requeue(j)
			if ctx.Err() != nil {
				return nil
			}
			p.metrics.aborted.WithLabelValues(p.cfg.Source).Inc()
			if isFenced(err) {
				return fmt.Errorf("%w: %w", errFenced, err)
			}
			return fmt.Errorf("writing poll: %w", err)
		}
	}
}

// fence initializes the producer ID (bumping the transactional ID's epoch,
// which aborts and fences whatever an older holder still has open) and
// then reads the newest checkpoint, which no older holder can change any
// more.
func (p *Publisher) fence(ctx context.Context, cl *kgo.Client) error {
	b := backoff{max: 5 * time.Second}
	for {
		_, _, err := cl.ProducerID(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.logger.Warn("Initializing the poll log's transactional producer", "err", err)
		if !sleep(ctx, b.next()) {
			return ctx.Err()
		}
	}
	b.reset()
	for {
		cp, err := lastCheckpoint(ctx, p.cfg.Conn, p.logger, p.cfg.LeaseTopic, p.cfg.Source)
		if err == nil {
			if cp != nil {
				p.mu.Lock()
				if cp.Seq >= p.lastSeq {
					p.lastSeq, p.lastSnap = cp.Seq, cp.SnapshotTime
				}
				p.mu.Unlock()
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.logger.Warn("Reading the source's last checkpoint", "err", err)
		if !sleep(ctx, b.next()) {
			return ctx.Err()
		}
	}
}

func (p *Publisher) producerOpts() []kgo.Opt {
	return append(p.cfg.opts(p.logger),
		kgo.TransactionalID(TransactionalID(p.cfg.Topic, p.cfg.Source)),
		kgo.TransactionTimeout(2*p.cfg.WriteTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.ProducerBatchMaxBytes(int32(max(1_000_012, p.cfg.MaxRecordBytes+64<<10))),
		kgo.ProducerLinger(0),
	)
}

// next returns the oldest queued poll that is newer than what the log
// has, or nil when ctx is canceled.
func (p *Publisher) next(ctx context.Context) *job {
	for {
		p.mu.Lock()
		for len(p.queue) > 0 {
			j := p.queue[0]
			p.queue = p.queue[1:]
			switch {
			case j.recs != nil && j.id.Seq <= p.lastSeq:
				continue // written already: the commit's answer was lost, its checkpoint was not
			case j.recs == nil && p.staleLocked(j):
				p.dropLocked(j, DropStale)
				continue
			}
			p.metrics.buffered.WithLabelValues(p.cfg.Source).Set(float64(len(p.queue)))
			p.mu.Unlock()
			return j
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		}
	}
}

// staleLocked reports a poll the log has already: one with the snapshot
// time of the source's last committed poll (the source had not moved on),
// or, for a poll queued before this publisher became active (polled while
// it stood by), one older than that. A poll taken while active is written
// even when its time went back: the source's clock did, the publisher's
// own view follows it, and so must the replicas'.
func (p *Publisher) staleLocked(j *job) bool {
	t := j.snap.Time()
	return t.Equal(p.lastSnap) || (t.Before(p.lastSnap) && j.enqueued.Before(p.termStart))
}

// requeue puts a poll that failed back at the head of the queue, unless
// newer polls have filled the buffer meanwhile: then it is the oldest, and
// dropped.
func (p *Publisher) requeue(j *job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.queue) >= p.cfg.MaxBufferedPolls {
		p.dropLocked(j, DropBufferFull)
		return
	}
	p.queue = append([]*job{j}, p.queue...)
	p.metrics.buffered.WithLabelValues(p.cfg.Source).Set(float64(len(p.queue)))
}

// nextSeq is a hybrid clock: the publish time in microseconds, or one more
// than the newest committed seq when that is larger, so that seqs increase
// across publishers even when their clocks disagree.
func (p *Publisher) nextSeq(now time.Time) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(uint64(max(now.UnixMicro(), 0)), p.lastSeq+1)
}

// producer is a term's transactional client, closed once.
type producer struct {
	*kgo.Client
	close func()
}

// errAbandoned is a write that took longer than WriteTimeout, or was still
// going when the lease was released: its producer is closed, which fails
// whatever it still waits for, and the next one's initialization aborts
// the transaction on the brokers.
var errAbandoned = errors.New("transaction abandoned with its producer")

// write writes one poll in one transaction: its data records, its end
// markers and the source's checkpoint in the lease topic. Any failure
// aborts the transaction. A write that does not end within WriteTimeout
// closes the producer: franz-go never gives up on records a broker may
// have received, and a transactional producer cannot be told to.
func (p *Publisher) write(ctx context.Context, cl *producer, enc *polllog.Encoder, j *job) error {
	attemptCtx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	watchdog := context.AfterFunc(attemptCtx, cl.close)
	err := p.writeTxn(attemptCtx, cl.Client, enc, j)
	if !watchdog() {
		return fmt.Errorf("%w: %w", errAbandoned, context.Cause(attemptCtx))
	}
	return err
}

func (p *Publisher) writeTxn(ctx context.Context, cl *kgo.Client, enc *polllog.Encoder, j *job) error {
	if j.recs == nil {
		now := p.cfg.Now()
		j.id = polllog.PollID{Source: p.cfg.Source, Seq: p.nextSeq(now), PublishTime: now}
		recs, err := enc.Encode(j.id, j.snap)
		if err != nil {
			p.mu.Lock()
			p.dropLocked(j, DropUnencodable)
			p.mu.Unlock()
			p.logger.Error("Poll cannot be written to the poll log", "err", err)
			return nil
		}
		j.recs = recs
	}
	records, bytes := p.kafkaRecords(j)
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	err := p.produce(ctx, cl, records)
	if err == nil {
		// The commit's context is not ctx: canceling an EndTransaction
		// leaves its outcome unknown.
		endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.WriteTimeout)
		err = cl.EndTransaction(endCtx, kgo.TryCommit)
		cancel()
		if err == nil {
			p.committed(j, len(records), bytes)
			return nil
		}
		err = fmt.Errorf("committing: %w", err)
	}
	p.abort(ctx, cl)
	return err
}

func (p *Publisher) produce(ctx context.Context, cl *kgo.Client, records []*kgo.Record) error {
	if p.failMidway != nil {
		half := len(records) / 2
		if err := cl.ProduceSync(ctx, records[:half]...).FirstErr(); err != nil {
			return err
		}
		if err := p.failMidway(); err != nil {
			return err
		}
		records = records[half:]
	}
	return cl.ProduceSync(ctx, records...).FirstErr()
}

// abort ends a failed transaction. Should the abort itself fail, the term
// ends and the next one's fresh producer aborts whatever is left.
func (p *Publisher) abort(ctx context.Context, cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.WriteTimeout)
	defer cancel()
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		p.logger.Debug("Aborting buffered records", "err", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		p.logger.Debug("Aborting the transaction", "err", err)
	}
}

func (p *Publisher) kafkaRecords(j *job) (records []*kgo.Record, bytes int) {
	records = make([]*kgo.Record, 0, len(j.recs)+1)
	for _, r := range j.recs {
		records = append(records, &kgo.Record{Topic: p.cfg.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Timestamp: j.id.PublishTime})
		bytes += len(r.Key) + len(r.Value)
	}
	cp := &kgo.Record{Topic: p.cfg.LeaseTopic, Partition: 0, Key: []byte(p.cfg.Source),
		Value: polllog.EncodeCheckpoint(j.id, j.snap.Time()), Timestamp: j.id.PublishTime}
	return append(records, cp), bytes
}

func (p *Publisher) committed(j *job, records, bytes int) {
	p.mu.Lock()
	if j.id.Seq >= p.lastSeq {
		p.lastSeq, p.lastSnap = j.id.Seq, j.snap.Time()
	}
	p.mu.Unlock()
	src := p.cfg.Source
	p.metrics.records.WithLabelValues(src).Add(float64(records - 1))
	p.metrics.bytes.WithLabelValues(src).Add(float64(bytes))
	p.metrics.polls.WithLabelValues(src).Inc()
	p.metrics.duration.WithLabelValues(src).Observe(time.Since(j.enqueued).Seconds())
}

// isFenced reports an error that means another producer initialized the
// transactional ID after this one.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}
