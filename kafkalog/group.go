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

// Defaults of GroupFollowerConfig.
const (
	// DefaultGroupSessionTimeout is how long the group waits for a member
	// that stopped heartbeating (a replica killed without warning) before
	// its partitions go to the others: well inside the 30 s in which a
	// dead replica's switches must be served again, and above the 6 s
	// Kafka's brokers accept at the least by default
	// (group.min.session.timeout.ms). Kafka's own default is 45 s.
	DefaultGroupSessionTimeout = 10 * time.Second
	// DefaultGroupHeartbeats is how many heartbeats a member sends per
	// session timeout (1 s apart at the default): a member learns that a
	// rebalance began at its next heartbeat, so frequent ones shorten
	// every rebalance (a cooperative one takes two rounds), and a session
	// survives nine lost ones. Kafka's advice is no more than a third of
	// the session timeout.
	DefaultGroupHeartbeats = 10
)

// GroupFollowerConfig configures a GroupFollower.
type GroupFollowerConfig struct {
	Conn
	Topic string
	// Group is the consumer group the partitioned replicas of one fabric
	// share; the topic's partitions are divided among its members.
	Group string
	// URL is this replica's base URL (the aggregator's
	// --web.external-url), advertised to the group so that the others can
	// ask it for the switches of its partitions.
	URL string
	// Name labels the follower's metrics and logs.
	Name string
	// Replay is how far back a partition is read when it is assigned:
	// from the offsets of now minus Replay, at start and at every
	// takeover, so that the replica has the partition's history. It should
	// be at least a poll interval: a partition whose window holds no
	// complete poll has nothing to serve until the next poll.
	Replay time.Duration
	// Table names the snapshots' columns, as the HTTP path's parser does.
	Table *schema.Table
	// SessionTimeout and HeartbeatInterval are the group's; zero means
	// DefaultGroupSessionTimeout and a tenth of the session timeout.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// OnPoll is called with each source's polls, each snapshot holding
	// the rows of the partitions this replica serves: owned and loaded
	// (read up to the end the partition had when assigned, which brings
	// its latest complete poll). A poll is delivered once every served
	// partition has it, so a snapshot never mixes two polls. When the set
	// served changes (a partition loaded, revoked, or lost and not given
	// back), the current poll is delivered again, same PollID, with the
	// new set's rows (no rows at all when none is left). OnPoll replaces
	// what the replica serves of the source: the aggregator's store.
	OnPoll func(*polllog.Poll)
	// OnPartitionPoll, if set, is called with every complete poll of
	// every owned partition, in order per source and partition, the
	// replay of a partition just assigned included: what a history of the
	// partition's own needs, so that a replica taking a partition over
	// also has its past. OnRelease, if set, is called with partitions the
	// replica gave up (revoked, or lost with the group session and not
	// assigned back), after their rows left OnPoll's snapshots.
	OnPartitionPoll func(partition int32, poll *polllog.Poll)
	OnRelease       func(partitions []int32)
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	Now             func() time.Time
	// Assembler tunes each partition's assembler; Table, Partitions and
	// Now are taken from the fields above. Its MaxAhead is also how many
	// polls a partition may hold past the one served before it is paused
	// for the others to catch up, and MaxPendingPolls how many it holds
	// at most.
	Assembler polllog.AssemblerConfig

	setupTimeout time.Duration // how long without joining the group before saying so
}

// GroupFollower reads the poll log as one member of a consumer group:
// Kafka divides the topic's partitions among the members (cooperative
// sticky assignment, so a rebalance moves only the partitions that change
// hands and the others keep being served), and each replica holds only the
// switches of its partitions. Each member advertises its base URL in the
// group, and learns every member's URL and partitions at each rebalance:
// the GroupFollower is the replicas' Membership.
//
// It commits no offsets: a partition assigned to it, at start or at a
// takeover, is read from now minus Replay, which gives its latest complete
// poll and its history, whatever another member had read of it.
type GroupFollower struct {
	cfg     GroupFollowerConfig
	logger  *slog.Logger
	metrics *followerMetrics
	group   *groupMetrics
	started time.Time
	closing atomic.Bool

	// mu guards the reading state. The group callbacks run on the Kafka
	// client's goroutines, but never while fetched records are processed
	// (BlockRebalanceOnPoll), and take mu like the reading loop.
	mu          sync.Mutex
	cl          *kgo.Client
	parts       map[int32]*partState // owned partitions
	orphans     []int32              // lost with the group session, still served until the next assignment
	comp        *composer
	queued      recordQueue
	paused      []int32
	joined      bool // assigned partitions (maybe none) at least once
	wasReady    bool
	lastPublish time.Time
	switches    map[string]int // served, per source
	// served are the partitions of each source's last poll delivered to
	// OnPoll: what its snapshot holds.
	served map[string][]int32

	view    atomic.Pointer[groupView]
	members atomic.Pointer[membership]
	serving atomic.Pointer[[]int32] // Serving's answer
}

// partState is what the follower knows of one owned partition.
type partState struct {
	asm         *polllog.Assembler
	assignedAt  time.Time
	started     bool  // the offsets to read from and to reach are known
	pos, target int64 // next offset to read; the stable end when assigned
	stable      int64 // newest last stable offset seen
	loaded      bool
}

// groupView is what readers see of the reading state, replaced whole.
type groupView struct {
	joined  bool
	owned   []int32
	loaded  []int32
	sources []string
}

// NewGroupFollower checks cfg and returns a GroupFollower; it joins the
// group in Run.
func NewGroupFollower(cfg GroupFollowerConfig) (*GroupFollower, error) {
	if err := cfg.Conn.validate(); err != nil {
		return nil, err
	}
	if cfg.Topic == "" || cfg.Group == "" || cfg.OnPoll == nil {
		return nil, errors.New("a group follower needs a topic, a group and OnPoll")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Name = cmp.Or(cfg.Name, cfg.Topic)
	cfg.SessionTimeout = cmp.Or(cfg.SessionTimeout, DefaultGroupSessionTimeout)
	cfg.HeartbeatInterval = cmp.Or(cfg.HeartbeatInterval, cfg.SessionTimeout/DefaultGroupHeartbeats)
	if cfg.HeartbeatInterval >= cfg.SessionTimeout {
		return nil, fmt.Errorf("heartbeat interval %v not below the session timeout %v", cfg.HeartbeatInterval, cfg.SessionTimeout)
	}
	cfg.Assembler.MaxAhead = cmp.Or(cfg.Assembler.MaxAhead, polllog.DefaultMaxAhead)
	cfg.Assembler.MaxPendingPolls = cmp.Or(cfg.Assembler.MaxPendingPolls, polllog.DefaultMaxPendingPolls)
	f := &GroupFollower{
		cfg:      cfg,
		logger:   cfg.Logger.With("source", cfg.Name, "topic", cfg.Topic, "group", cfg.Group),
		metrics:  newFollowerMetrics(cfg.Registerer),
		group:    newGroupMetrics(cfg.Registerer),
		parts:    map[int32]*partState{},
		queued:   recordQueue{},
		switches: map[string]int{},
		served:   map[string][]int32{},
	}
	f.comp = newComposer(cfg.Assembler.MaxAhead, cfg.Assembler.MaxPendingPolls, f.deliver, f.rejected)
	f.metrics.addSource(cfg.Name)
	f.group.addSource(cfg.Name)
	f.view.Store(&groupView{})
	f.serving.Store(&[]int32{})
	return f, nil
}

// Ready reports whether the follower serves every partition the group
// assigned it: it joined the group and each of its partitions has been
// read up to the end the log had when the partition was assigned. A
// rebalance that assigns partitions makes it not ready until they are
// loaded; Partitions tells which are. A member without partitions is
// ready once no partition of the group is left without an owner (a new
// member owns none in the first round of a cooperative rebalance). It
// stays ready when the group session is lost with Kafka, serving the last
// polls.
func (f *GroupFollower) Ready() bool {
	v, m := f.view.Load(), f.members.Load()
	if !v.joined || len(v.loaded) != len(v.owned) {
		return false
	}
	return len(v.owned) > 0 || m != nil && m.partitions > 0 && m.unowned() == 0
}

// Partitions returns the partitions the group assigned to this replica and
// those of them it serves (loaded), in order.
func (f *GroupFollower) Partitions() (owned, loaded []int32) {
	v := f.view.Load()
	return slices.Clone(v.owned), slices.Clone(v.loaded)
}

// Serving returns the topic's partition count, as of the latest
// rebalance (0 before the first), and the partitions whose switches the
// snapshots delivered to OnPoll hold now, in order: for every source seen
// in the log, its last poll delivered has the partition's rows, and its
// PromQL history fed by OnPartitionPoll has the partition's polls up to
// that one. It never names a partition the snapshots being served lack:
// the set shrinks before OnPoll is handed a snapshot without a partition
// and grows after it got one with it, and OnRelease comes after. A reader
// that takes Serving before and after it loads what it serves, and keeps
// the partitions both name, knows what it loaded holds whole. Peers are
// told so (package cluster), which makes an answer that lacks a partition
// during a rebalance say it is partial.
func (f *GroupFollower) Serving() (partitions int, served []int32) {
	if m := f.members.Load(); m != nil {
		partitions = m.partitions
	}
	return partitions, *f.serving.Load()
}

// Members returns the group's members and their partitions as of the
// latest rebalance, ordered by member ID; nil before the first.
func (f *GroupFollower) Members() []GroupMember {
	m := f.members.Load()
	if m == nil {
		return nil
	}
	out := slices.Clone(m.members)
	for i := range out {
		out[i].Partitions = slices.Clone(out[i].Partitions)
	}
	return out
}

// Self returns this replica's base URL.
func (f *GroupFollower) Self() string { return f.cfg.URL }

// Peers returns the base URLs the other members of the group advertise,
// as of the latest rebalance, in order.
func (f *GroupFollower) Peers() []string {
	m := f.members.Load()
	if m == nil {
		return nil
	}
	var out []string
	for _, member := range m.members {
		if member.URL != "" && member.URL != f.cfg.URL && !slices.Contains(out, member.URL) {
			out = append(out, member.URL)
		}
	}
	slices.Sort(out)
	return out
}

// Sources returns the names of the sources seen in the log, in order.
// Every poll ends with a marker in every partition, so a replica that owns
// any partition sees every source that wrote a poll since its window.
func (f *GroupFollower) Sources() []string { return slices.Clone(f.view.Load().sources) }

// Owner returns the base URL of the member that owns the partition of a
// switch of a source, as of the latest rebalance: this replica's own URL
// for its partitions, "" when nobody owns it or the group is not known
// yet. An owner may still be loading the partition (see Partitions).
func (f *GroupFollower) Owner(source, switchID string) string {
	m := f.members.Load()
	if m == nil || m.partitions == 0 {
		return ""
	}
	return m.ownerURL(polllog.Partition(polllog.Key(source, switchID), m.partitions))
}

// Run joins the group and reads the owned partitions until ctx is
// canceled, then leaves the group, so that the others take its partitions
// over at once. Kafka being unreachable is logged and retried, never
// returned; only a client that cannot be made is an error.
func (f *GroupFollower) Run(ctx context.Context) error {
	f.started = f.cfg.Now()
	cl, err := kgo.NewClient(f.clientOpts()...)
	if err != nil {
		return fmt.Errorf("creating the poll log's group client: %w", err)
	}
	f.logger.Info("Joining the poll log's group", "url", f.cfg.URL, "replay", f.cfg.Replay, "session_timeout", f.cfg.SessionTimeout)
	f.read(ctx, cl)
	f.closing.Store(true) // leaving revokes everything: nothing to deliver any more
	cl.Close()
	return nil
}

func (f *GroupFollower) clientOpts() []kgo.Opt {
	return append(f.cfg.opts(f.logger),
		kgo.ConsumerGroup(f.cfg.Group),
		kgo.ConsumeTopics(f.cfg.Topic),
		kgo.Balancers(newMembershipBalancer(f.cfg.Topic, f.cfg.URL, f.synced)),
		kgo.SessionTimeout(f.cfg.SessionTimeout),
		kgo.HeartbeatInterval(f.cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(2*f.cfg.SessionTimeout),
		// A member that cannot reach the coordinator for a session
		// timeout ends its session on its side too, rather than
		// retrying for 30 s while the group has moved on.
		kgo.RetryTimeoutFn(func(int16) time.Duration { return f.cfg.SessionTimeout }),
		kgo.DisableAutoCommit(),
		// A fetch waits at most this long for records before it returns,
		// and partitions assigned meanwhile are fetched from its broker
		// only after it: Kafka's Java consumer's 500 ms rather than
		// franz-go's 5 s, which would delay every takeover.
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // so that positions pass transaction markers
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(f.assigned),
		kgo.OnPartitionsRevoked(f.revoked),
		kgo.OnPartitionsLost(f.lost),
		kgo.AdjustFetchOffsetsFn(f.startOffsets),
	)
}

// read polls fetches until ctx is canceled, feeding the assemblers.
func (f *GroupFollower) read(ctx context.Context, cl *kgo.Client) {
	lastErr := time.Now()
	for {
		if !f.view.Load().joined && time.Since(lastErr) >= cmp.Or(f.cfg.setupTimeout, defaultSetupTimeout) {
			lastErr = time.Now()
			f.logger.Error("Cannot read the poll log; not ready, retrying", "brokers", f.cfg.Brokers, "err", f.unjoined(ctx, cl))
		}
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return
		}
		for _, e := range fetches.Errors() {
			if errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled) || time.Since(lastErr) < 10*time.Second {
				continue
			}
			lastErr = time.Now()
			if f.Ready() {
				f.logger.Warn("Reading the poll log", "partition", e.Partition, "err", e.Err)
			} else {
				f.logger.Error("Cannot read the poll log; not ready, retrying", "brokers", f.cfg.Brokers, "err", e.Err)
			}
		}
		f.mu.Lock()
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			st := f.parts[fp.Partition]
			if fp.Topic != f.cfg.Topic || st == nil {
				return
			}
			f.queued[fp.Partition] = append(f.queued[fp.Partition], fp.Records...)
			st.stable = max(st.stable, fp.LastStableOffset)
		})
		f.queued.drain(len(f.parts), f.comp.ahead, f.feedLocked)
		f.paused = f.queued.pace(cl, f.cfg.Topic, f.paused)
		for _, st := range f.parts {
			for _, r := range st.asm.Expire() {
				f.rejected(r)
			}
		}
		f.updateLocked()
		f.mu.Unlock()
		cl.AllowRebalance()
	}
}

// unjoined says why the follower has not joined the group yet.
func (f *GroupFollower) unjoined(ctx context.Context, cl *kgo.Client) error {
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := cl.Ping(pingCtx); err != nil {
		return fmt.Errorf("no broker answers: %w", err)
	}
	return fmt.Errorf("no assignment from the group coordinator after %v", time.Since(f.started).Round(time.Second))
}

// feedLocked hands one record to its partition's assembler, and what it
// completes to OnPartitionPoll and the composer.
func (f *GroupFollower) feedLocked(p int32, r *kgo.Record) {
	st := f.parts[p]
	if st == nil || r.Offset < st.pos {
		return
	}
	st.pos = r.Offset + 1
	if !r.Attrs.IsControl() {
		f.metrics.records.WithLabelValues(f.cfg.Name).Inc()
		f.metrics.bytes.WithLabelValues(f.cfg.Name).Add(float64(len(r.Value)))
		polls, rejected := st.asm.Add(p, r.Offset, r.Value)
		for _, rej := range rejected {
			f.rejected(rej)
		}
		for _, poll := range polls {
			if f.cfg.OnPartitionPoll != nil {
				f.cfg.OnPartitionPoll(p, poll)
			}
			f.comp.add(p, poll)
		}
	}
	f.checkLoadedLocked(p, st)
}

// checkLoadedLocked starts serving a partition once it has been read up
// to the end it had when assigned.
func (f *GroupFollower) checkLoadedLocked(p int32, st *partState) {
	if st.loaded || !st.started || st.pos < st.target {
		return
	}
	st.loaded = true
	f.logger.Info("Poll log partition loaded; serving its switches", "partition", p,
		"took", f.cfg.Now().Sub(st.assignedAt).Round(time.Millisecond), "offset", st.pos)
	f.comp.load(p)
}

// deliver hands a composed poll to OnPoll.
func (f *GroupFollower) deliver(poll *polllog.Poll, fresh bool) {
	if f.closing.Load() {
		return
	}
	if fresh {
		f.metrics.polls.WithLabelValues(f.cfg.Name).Inc()
		if poll.PublishTime.After(f.lastPublish) {
			f.lastPublish = poll.PublishTime
		}
	}
	f.switches[poll.Source] = len(poll.Snapshot.Switches())
	// A composed poll holds the end marker offsets of exactly the
	// partitions whose rows it has.
	parts := slices.Sorted(maps.Keys(poll.Offsets))
	f.setServedLocked(poll.Source, intersectSorted(f.served[poll.Source], parts))
	f.cfg.OnPoll(poll)
	f.setServedLocked(poll.Source, parts)
}

// setServedLocked records the partitions a source's snapshot holds and
// publishes Serving's answer: the partitions every source seen holds (a
// source seen but not served yet holds none).
func (f *GroupFollower) setServedLocked(source string, parts []int32) {
	f.served[source] = parts
	var all []int32
	for i, name := range f.comp.names() {
		if i == 0 {
			all = slices.Clone(f.served[name])
		} else {
			all = intersectSorted(all, f.served[name])
		}
	}
	if all == nil {
		all = []int32{}
	}
	f.serving.Store(&all)
}

// intersectSorted returns the partitions in both sorted lists.
func intersectSorted(a, b []int32) []int32 {
	out := []int32{}
	for _, p := range a {
		if _, ok := slices.BinarySearch(b, p); ok {
			out = append(out, p)
		}
	}
	return out
}

func (f *GroupFollower) rejected(r polllog.Rejection) { f.metrics.reject(f.logger, f.cfg.Name, r) }

// assigned is the group's OnPartitionsAssigned: the new partitions wait
// for their offsets (startOffsets), then are read and loaded.
func (f *GroupFollower) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cl = cl
	if len(f.orphans) > 0 {
		// Kafka is back and the group has decided: the partitions lost
		// with the last session are read anew if they are ours again.
		f.releaseLocked(f.orphans, "assigned anew after the group session was lost")
		f.orphans = nil
	}
	added := assigned[f.cfg.Topic]
	for _, p := range added {
		ac := f.cfg.Assembler
		ac.Table, ac.Partitions, ac.Now = f.cfg.Table, []int32{p}, f.cfg.Now
		f.parts[p] = &partState{asm: polllog.NewAssembler(ac), assignedAt: f.cfg.Now()}
	}
	f.joined = true
	if len(added) > 0 {
		f.logger.Info("Poll log partitions assigned; loading them", "partitions", added)
	}
	f.updateLocked()
}

// revoked is the group's OnPartitionsRevoked: the partitions' rows leave
// what is served before the group hands them to another member.
func (f *GroupFollower) revoked(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if len(revoked[f.cfg.Topic]) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releaseLocked(revoked[f.cfg.Topic], "revoked")
	f.resumeLocked(cl, revoked[f.cfg.Topic])
	f.updateLocked()
}

// lost is the group's OnPartitionsLost: the session ended without a
// rebalance (Kafka unreachable for a session timeout, or the member was
// fenced out). Whether another member has the partitions now is not known
// until the group assigns them again (if Kafka is down, nobody has), so
// their last polls are served until then, as a Follower serves its last
// good data while Kafka is away.
func (f *GroupFollower) lost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	parts := lost[f.cfg.Topic]
	if len(parts) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comp.freeze(parts)
	f.forgetLocked(parts)
	f.resumeLocked(cl, parts)
	f.orphans = append(f.orphans, parts...)
	f.logger.Warn("Lost the poll log's group session; serving the last polls of its partitions until the group assigns them again",
		"partitions", parts)
	f.updateLocked()
}

// releaseLocked takes partitions out of what is served and forgets them.
func (f *GroupFollower) releaseLocked(parts []int32, why string) {
	f.comp.remove(parts)
	f.forgetLocked(parts)
	for _, p := range parts {
		f.metrics.lag.DeleteLabelValues(f.cfg.Name, strconv.Itoa(int(p)))
	}
	f.logger.Info("Poll log partitions given up", "partitions", parts, "why", why)
	if f.cfg.OnRelease != nil && !f.closing.Load() {
		f.cfg.OnRelease(slices.Clone(parts))
	}
}

func (f *GroupFollower) forgetLocked(parts []int32) {
	for _, p := range parts {
		delete(f.parts, p)
		delete(f.queued, p)
	}
}

// resumeLocked resumes fetching partitions given up while paused: a paused
// partition stays paused across assignments.
func (f *GroupFollower) resumeLocked(cl *kgo.Client, parts []int32) {
	var resume []int32
	for _, p := range parts {
		if slices.Contains(f.paused, p) {
			resume = append(resume, p)
		}
	}
	f.paused = slices.DeleteFunc(f.paused, func(p int32) bool { return slices.Contains(parts, p) })
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(map[string][]int32{f.cfg.Topic: resume})
	}
}

// startOffsets is the group's AdjustFetchOffsetsFn: newly assigned
// partitions are read from the first offset at or after now minus Replay,
// whatever offsets the group has (it has none: nothing is committed), and
// are loaded once read up to the stable end they have now.
func (f *GroupFollower) startOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := slices.Sorted(maps.Keys(offsets[f.cfg.Topic]))
	if len(parts) == 0 {
		return offsets, nil
	}
	f.mu.Lock()
	adm := kadm.NewClient(f.cl)
	f.mu.Unlock()
	b := backoff{max: 5 * time.Second}
	var starts, ends kadm.ListedOffsets
	for {
		var err error
		if starts, ends, err = f.listStarts(ctx, adm); err == nil {
			break
		}
		f.logger.Warn("Cannot find where to read the assigned partitions of the poll log; retrying", "partitions", parts, "err", err)
		if !sleep(ctx, b.next()) {
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	at := make(map[int32]kgo.Offset, len(parts))
	for _, p := range parts {
		st := f.parts[p]
		if st == nil { // assigned in a session whose offsets were not fetched
			ac := f.cfg.Assembler
			ac.Table, ac.Partitions, ac.Now = f.cfg.Table, []int32{p}, f.cfg.Now
			st = &partState{asm: polllog.NewAssembler(ac), assignedAt: f.cfg.Now()}
			f.parts[p] = st
		}
		s, _ := starts.Lookup(f.cfg.Topic, p)
		e, _ := ends.Lookup(f.cfg.Topic, p)
		// As a Follower starts: at the window's first record, or at the
		// stable end when that is earlier (a transaction open while the
		// offsets were listed) or the window holds nothing.
		st.pos = e.Offset
		if s.Timestamp >= 0 && s.Offset >= 0 {
			st.pos = min(s.Offset, e.Offset)
		}
		st.target, st.started = e.Offset, true
		at[p] = kgo.NewOffset().At(st.pos).WithEpoch(-1)
		f.checkLoadedLocked(p, st)
	}
	offsets[f.cfg.Topic] = at
	f.updateLocked()
	return offsets, nil
}

// listStarts lists the stable ends first: listed after the window's
// starts, they could pass a transaction that committed in between.
func (f *GroupFollower) listStarts(ctx context.Context, adm *kadm.Client) (starts, ends kadm.ListedOffsets, err error) {
	ends, err = adm.ListCommittedOffsets(ctx, f.cfg.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing stable offsets: %w", err)
	}
	from := f.cfg.Now().Add(-f.cfg.Replay)
	starts, err = adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), f.cfg.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing offsets after %v: %w", from, err)
	}
	return starts, ends, nil
}

// synced takes the membership of each assignment this member receives.
func (f *GroupFollower) synced(data *assignmentData) {
	f.group.rebalances.WithLabelValues(f.cfg.Name).Inc()
	if data == nil {
		return // a leader that wrote none: keep the last
	}
	m := newMembership(data)
	f.members.Store(m)
	f.group.members.WithLabelValues(f.cfg.Name).Set(float64(len(m.members)))
	f.group.unowned.WithLabelValues(f.cfg.Name).Set(float64(m.unowned()))
	f.logger.Info("Poll log group balanced", "members", len(m.members), "partitions", m.partitions, "unowned", m.unowned())
}

// updateLocked publishes the reading state to readers and metrics.
func (f *GroupFollower) updateLocked() {
	v := &groupView{joined: f.joined, sources: f.comp.names()}
	lagging := false
	for _, p := range slices.Sorted(maps.Keys(f.parts)) {
		st := f.parts[p]
		v.owned = append(v.owned, p)
		if st.loaded {
			v.loaded = append(v.loaded, p)
		}
		if st.started {
			lag := max(max(st.stable, st.target)-st.pos, 0)
			f.metrics.lag.WithLabelValues(f.cfg.Name, strconv.Itoa(int(p))).Set(float64(lag))
			lagging = lagging || lag > 0
		}
	}
	f.view.Store(v)
	behind := 0.0
	if lagging || len(v.loaded) < len(v.owned) {
		since := f.lastPublish
		if since.IsZero() {
			since = f.started
		}
		behind = f.cfg.Now().Sub(since).Seconds()
	}
	switches := 0
	for _, n := range f.switches {
		switches += n
	}
	f.metrics.behind.WithLabelValues(f.cfg.Name).Set(behind)
	f.group.owned.WithLabelValues(f.cfg.Name).Set(float64(len(v.owned)))
	f.group.loaded.WithLabelValues(f.cfg.Name).Set(float64(len(v.loaded)))
	f.group.switches.WithLabelValues(f.cfg.Name).Set(float64(switches))
	ready := f.Ready()
	f.metrics.ready.WithLabelValues(f.cfg.Name).Set(boolFloat(ready))
	if ready && !f.wasReady {
		f.logger.Info("Poll log partitions loaded; ready", "partitions", v.owned, "took", f.cfg.Now().Sub(f.started).Round(time.Millisecond))
	}
	f.wasReady = ready
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
