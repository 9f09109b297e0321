package kafkalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/schema"
)

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	Conn
	Topic string
	// Name labels the follower's metrics and logs (the aggregator's
	// source name for the topic).
	Name string
	// Replay is how far back a starting follower reads the log: from the
	// offsets of now minus Replay, so that a restarted replica gets its
	// history back. 0 starts at the end.
	Replay time.Duration
	// Table names the snapshots' columns, as the HTTP path's parser does.
	Table *schema.Table
	// Partitions is the set of partitions to read; nil means all.
	Partitions []int32
	// OnPoll is called with every complete poll, in order per source, from
	// Run's goroutine.
	OnPoll     func(*polllog.Poll)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// Assembler tunes the assembler's caps; Table, Partitions and Now
	// are taken from the fields above.
	Assembler polllog.AssemblerConfig

	setupTimeout time.Duration // bounds one attempt to find the topic and offsets
}

const defaultSetupTimeout = 10 * time.Second

// Follower reads every partition of the poll log, read-committed, and
// hands the complete polls to OnPoll.
type Follower struct {
	cfg     FollowerConfig
	logger  *slog.Logger
	metrics *followerMetrics
	asm     *polllog.Assembler
	started time.Time

	ready atomic.Bool

	mu          sync.Mutex
	parts       []int32         // the partitions read
	pos         map[int32]int64 // next offset to read
	target      map[int32]int64 // ends seen at start, to be ready
	stable      map[int32]int64 // newest last stable offset seen
	paused      []int32
	lastPublish time.Time // of the newest poll applied
}

// NewFollower checks cfg and returns a Follower; it connects in Run.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if err := cfg.Conn.validate(); err != nil {
		return nil, err
	}
	if cfg.Topic == "" || cfg.OnPoll == nil {
		return nil, errors.New("a follower needs a topic and OnPoll")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Name = cmp.Or(cfg.Name, cfg.Topic)
	ac := cfg.Assembler
	ac.Table, ac.Partitions, ac.Now = cfg.Table, cfg.Partitions, cfg.Now
	f := &Follower{
		cfg:     cfg,
		logger:  cfg.Logger.With("source", cfg.Name, "topic", cfg.Topic),
		metrics: newFollowerMetrics(cfg.Registerer),
		asm:     polllog.NewAssembler(ac),
		pos:     map[int32]int64{},
		stable:  map[int32]int64{},
	}
	f.metrics.addSource(cfg.Name)
	return f, nil
}

// Ready reports whether every partition has been read up to the end it
// had when the follower started (or later), every complete poll up to it
// handed to OnPoll. It stays true once reached.
func (f *Follower) Ready() bool { return f.ready.Load() }

// Lag returns, per partition read, how many offsets the follower is
// behind the last stable offset it knows.
func (f *Follower) Lag() map[int32]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[int32]int64, len(f.parts))
	for _, p := range f.parts {
		out[p] = f.lagLocked(p)
	}
	return out
}

func (f *Follower) lagLocked(p int32) int64 {
	return max(f.stable[p], f.target[p]) - f.pos[p]
}

// Run reads the log until ctx is canceled. Kafka being unreachable or the
// topic missing is logged and retried, never returned; the follower is
// not ready meanwhile.
func (f *Follower) Run(ctx context.Context) error {
	f.started = f.cfg.Now()
	b := backoff{max: 30 * time.Second}
	for ctx.Err() == nil {
		err := f.follow(ctx, &b)
		if ctx.Err() != nil {
			break
		}
		f.logger.Error("Cannot read the poll log; not ready, retrying", "brokers", f.cfg.Brokers, "ready", f.Ready(), "err", err)
		sleep(ctx, b.next())
	}
	return nil
}

// followerFetchMaxWait is how long a broker may hold a fetch that finds no
// new record. A partition that pace resumes joins the next fetch to its
// broker, and that broker's fetch in flight, for partitions at their end,
// is held this long first: with franz-go's default, 5 s, a replay paused
// and resumed partitions for seconds each time (25 s to replay 60 polls of
// a 200 × 64-port fabric, 0.7 s with 100 ms: BenchmarkReplayFabric). A
// caught-up reader then asks each broker ten times a second, which costs
// a broker little.
const followerFetchMaxWait = 100 * time.Millisecond

// follow connects, finds where to start and reads until ctx is canceled
// or the setup fails.
func (f *Follower) follow(ctx context.Context, b *backoff) error {
	// The fetch wait first, so that Conn.ClientOpts can change it.
	opts := append([]kgo.Opt{kgo.FetchMaxWait(followerFetchMaxWait)}, f.cfg.opts(f.logger)...)
	cl, err := kgo.NewClient(append(opts,
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // so that positions pass transaction markers
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	setupCtx, cancel := context.WithTimeout(ctx, cmp.Or(f.cfg.setupTimeout, defaultSetupTimeout))
	err = f.start(setupCtx, adm)
	cancel()
	if err != nil {
		return err
	}
	b.reset()
	f.mu.Lock()
	offsets := map[int32]kgo.Offset{}
	for _, p := range f.parts {
		offsets[p] = kgo.NewOffset().At(f.pos[p])
	}
	f.paused = nil
	f.mu.Unlock()
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.cfg.Topic: offsets})
	f.logger.Info("Reading the poll log", "partitions", len(offsets), "replay", f.cfg.Replay)
	return f.read(ctx, cl, adm)
}

// start finds the partitions to read and, the first time, the offsets to
// start from (now minus Replay) and those to reach to be ready.
func (f *Follower) start(ctx context.Context, adm *kadm.Client) error {
	n, err := partitionCount(ctx, adm, f.cfg.Topic)
	if err != nil {
		return err
	}
	f.mu.Lock()
	known := f.target != nil
	f.mu.Unlock()
	if known {
		f.newPartitions(n)
		return nil
	}
	// The stable ends first: they are the offsets to reach to be ready,
	// and where to start a partition that has nothing after the replay
	// window's start. Listed after, they could pass a transaction that
	// committed in between.
	ends, err := adm.ListCommittedOffsets(ctx, f.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("listing stable offsets: %w", err)
	}
	from := f.started.Add(-f.cfg.Replay)
	starts, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), f.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("listing offsets after %v: %w", from, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = map[int32]int64{}
	for p := range int32(n) {
		if !f.owns(p) {
			continue
		}
		s, _ := starts.Lookup(f.cfg.Topic, p)
		e, _ := ends.Lookup(f.cfg.Topic, p)
		// Start at the first record of the window, or at the stable end
		// listed first when that is earlier: the records after it were
		// written while the follower started (a transaction still open
		// when its offsets were listed), and a later start would cut them.
		// A partition with nothing in the window (no timestamp found)
		// starts at that stable end too.
		f.parts = append(f.parts, p)
		f.pos[p] = e.Offset
		if s.Timestamp >= 0 && s.Offset >= 0 {
			f.pos[p] = min(s.Offset, e.Offset)
		}
		f.target[p] = e.Offset
	}
	return nil
}

func (f *Follower) owns(p int32) bool {
	return f.cfg.Partitions == nil || slices.Contains(f.cfg.Partitions, p)
}

// newPartitions adds the partitions the topic gained to those read, from
// their start, and returns them.
func (f *Follower) newPartitions(n int) []int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var added []int32
	for p := range int32(n) {
		if f.owns(p) && !slices.Contains(f.parts, p) {
			f.parts = append(f.parts, p)
			f.pos[p] = 0
			added = append(added, p)
		}
	}
	if len(added) > 0 {
		f.logger.Info("Reading new partitions of the poll log", "partitions", added)
	}
	return added
}

// read polls fetches until ctx is canceled, feeding the assembler.
func (f *Follower) read(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
	recheck := time.Now()
	var lastErr time.Time
	queued := recordQueue{}
	for {
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		for _, e := range fetches.Errors() {
			if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) {
				continue
			}
			if time.Since(lastErr) > 10*time.Second {
				f.logger.Warn("Reading the poll log", "partition", e.Partition, "err", e.Err)
				lastErr = time.Now()
			}
		}
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			queued[fp.Partition] = append(queued[fp.Partition], fp.Records...)
			if fp.LastStableOffset >= 0 {
				f.mu.Lock()
				f.stable[fp.Partition] = max(f.stable[fp.Partition], fp.LastStableOffset)
				f.mu.Unlock()
			}
		})
		f.mu.Lock()
		reading := len(f.parts)
		f.mu.Unlock()
		queued.drain(reading, f.asm.IsAhead, f.feed)
		f.pace(cl, queued)
		for _, r := range f.asm.Expire() {
			f.rejected(r)
		}
		f.update()
		if time.Since(recheck) > 30*time.Second {
			recheck = time.Now()
			if n, err := partitionCount(ctx, adm, f.cfg.Topic); err == nil {
				f.grow(cl, n)
			}
		}
	}
}

// feed hands one record to the assembler and OnPoll what it completes.
func (f *Follower) feed(p int32, r *kgo.Record) {
	f.mu.Lock()
	f.pos[p] = r.Offset + 1
	f.mu.Unlock()
	if r.Attrs.IsControl() {
		return
	}
	f.metrics.records.WithLabelValues(f.cfg.Name).Inc()
	f.metrics.bytes.WithLabelValues(f.cfg.Name).Add(float64(len(r.Value)))
	polls, rejected := f.asm.Add(p, r.Offset, r.Value)
	for _, rej := range rejected {
		f.rejected(rej)
	}
	for _, poll := range polls {
		f.mu.Lock()
		if poll.PublishTime.After(f.lastPublish) {
			f.lastPublish = poll.PublishTime
		}
		f.mu.Unlock()
		f.metrics.polls.WithLabelValues(f.cfg.Name).Inc()
		f.cfg.OnPoll(poll)
	}
}

func (f *Follower) rejected(r polllog.Rejection) { f.metrics.reject(f.logger, f.cfg.Name, r) }

// pace keeps what the follower holds to one fetch per partition
// (recordQueue.pace).
func (f *Follower) pace(cl *kgo.Client, queued recordQueue) {
	f.mu.Lock()
	paused := f.paused
	f.mu.Unlock()
	now := queued.pace(cl, f.cfg.Topic, paused)
	f.mu.Lock()
	f.paused = now
	f.mu.Unlock()
}

// update sets readiness and the lag gauges.
func (f *Follower) update() {
	f.mu.Lock()
	defer f.mu.Unlock()
	caught := f.target != nil
	var lagging bool
	for _, p := range f.parts {
		lag := max(f.lagLocked(p), 0)
		f.metrics.lag.WithLabelValues(f.cfg.Name, strconv.Itoa(int(p))).Set(float64(lag))
		if f.pos[p] < f.target[p] {
			caught = false
		}
		lagging = lagging || lag > 0
	}
	behind := 0.0
	if lagging {
		since := f.lastPublish
		if since.IsZero() {
			since = f.started
		}
		behind = f.cfg.Now().Sub(since).Seconds()
	}
	f.metrics.behind.WithLabelValues(f.cfg.Name).Set(behind)
	if caught && !f.ready.Load() {
		f.ready.Store(true)
		f.metrics.ready.WithLabelValues(f.cfg.Name).Set(1)
		f.logger.Info("Poll log caught up; ready", "took", f.cfg.Now().Sub(f.started).Round(time.Millisecond),
			"partitions", len(f.parts), "offsets", maps.Clone(f.pos))
	}
}

// grow starts reading partitions the topic gained while it was read.
func (f *Follower) grow(cl *kgo.Client, n int) {
	added := f.newPartitions(n)
	if len(added) == 0 {
		return
	}
	offsets := map[int32]kgo.Offset{}
	for _, p := range added {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{f.cfg.Topic: offsets})
}
