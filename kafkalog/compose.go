package kafkalog

import (
	"cmp"
	"maps"
	"math"
	"slices"

	"github.com/fabrictelemetry/aggregator/polllog"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// composer turns the complete polls of single partitions, each assembled
// on its own, into each source's polls of the partitions a replica
// serves. The partitions a replica owns change at every rebalance and are
// read from different places in the log (a partition taken over replays
// its window while the others are live), so each is assembled alone and
// the composer joins them: it delivers a source's poll once every
// partition it serves has that poll, so a delivered snapshot never mixes
// two polls, and it delivers the current poll again, for the new set, when
// a partition starts or stops being served.
//
// A partition is served once loaded (read up to the end the log had when
// it was assigned, which brings its latest complete poll): until then its
// polls are kept, not delivered. The composer belongs to one goroutine at a
// time (the group follower's lock).
type composer struct {
	maxAhead  int // polls of a source a partition may hold past the current one before it is paused
	maxQueued int // polls of a source a partition holds at most, the oldest dropped past it
	loaded    map[int32]bool
	sources   map[string]*composition
	// deliver gets each composed poll; fresh is false when it is the
	// current poll delivered again for another set of partitions.
	deliver func(poll *polllog.Poll, fresh bool)
	// corrupt is told of a poll whose partitions cannot be joined (the same
	// row in two partitions: only a broken publisher writes that).
	corrupt func(polllog.Rejection)
}

// composition is what the composer knows of one source.
type composition struct {
	name       string
	partitions int // the topic's partition count when the newest poll was written
	composed   bool
	seq        uint64                    // the current poll, once composed
	current    map[int32]*polllog.Poll   // the served partitions' parts of it
	queue      map[int32][]*polllog.Poll // per partition, polls after it (and of it, for a partition not in current)
	last       *polllog.Poll             // delivered last
}

func newComposer(maxAhead, maxQueued int, deliver func(*polllog.Poll, bool), corrupt func(polllog.Rejection)) *composer {
	return &composer{
		maxAhead: maxAhead, maxQueued: max(maxQueued, maxAhead+1),
		loaded: map[int32]bool{}, sources: map[string]*composition{},
		deliver: deliver, corrupt: corrupt,
	}
}

func (c *composer) source(name string) *composition {
	s, ok := c.sources[name]
	if !ok {
		s = &composition{name: name, current: map[int32]*polllog.Poll{}, queue: map[int32][]*polllog.Poll{}}
		c.sources[name] = s
	}
	return s
}

// names returns the sources seen, in order.
func (c *composer) names() []string { return slices.Sorted(maps.Keys(c.sources)) }

// add takes a complete poll of partition p, which the replica owns.
func (c *composer) add(p int32, poll *polllog.Poll) {
	s := c.source(poll.Source)
	if !s.composed || poll.Seq >= s.seq {
		s.partitions = poll.Partitions
	}
	if s.composed && (poll.Seq < s.seq || poll.Seq == s.seq && s.current[p] != nil) {
		return // older than what is served: only a replay's history
	}
	q := s.queue[p]
	if !c.loaded[p] && !c.live(s) {
		// Nothing of the source is served, so nothing to keep pace with:
		// a partition replaying its window keeps its newest poll only.
		q = nil
	}
	q = append(q, poll)
	if len(q) > c.maxQueued {
		q = q[len(q)-c.maxQueued:]
	}
	s.queue[p] = q
	c.settle(s, false)
}

// load starts serving p: it has been read up to the end it had when assigned.
func (c *composer) load(p int32) {
	c.loaded[p] = true
	for _, name := range c.names() {
		c.settle(c.sources[name], false)
	}
}

// remove stops serving the partitions and forgets them: their rows leave
// every source's snapshot, which is delivered again without them.
func (c *composer) remove(parts []int32) {
	for _, p := range parts {
		delete(c.loaded, p)
	}
	for _, name := range c.names() {
		s := c.sources[name]
		changed := false
		for _, p := range parts {
			delete(s.queue, p)
			if s.current[p] != nil {
				delete(s.current, p)
				changed = true
			}
		}
		c.settle(s, changed)
	}
}

// freeze stops reading the partitions but keeps their rows in the current
// snapshots, until remove: for partitions lost with the group session,
// whose new owner is not known yet (Kafka may be down for everyone).
func (c *composer) freeze(parts []int32) {
	for _, p := range parts {
		delete(c.loaded, p)
		for _, s := range c.sources {
			delete(s.queue, p)
		}
	}
}

// ahead reports whether p holds enough polls of some served source that
// the partitions it waits for must catch up before it is read further.
func (c *composer) ahead(p int32) bool {
	for _, s := range c.sources {
		if len(s.queue[p]) >= c.maxAhead && c.live(s) {
			return true
		}
	}
	return false
}

// serving returns the loaded partitions the source's polls are written
// to, in order.
func (c *composer) serving(s *composition) []int32 {
	var out []int32
	for p := range c.loaded {
		if int(p) < s.partitions {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (c *composer) live(s *composition) bool {
	for p := range c.loaded {
		if int(p) < s.partitions {
			return true
		}
	}
	return false
}

// settle joins newly served partitions to the current poll when they have
// it, delivers the current poll again if its partitions changed, then
// composes every later poll that all served partitions have.
func (c *composer) settle(s *composition, changed bool) {
	if s.composed {
		for _, p := range c.serving(s) {
			if q := s.queue[p]; s.current[p] == nil && len(q) > 0 && q[0].Seq == s.seq {
				s.current[p], s.queue[p] = q[0], q[1:]
				changed = true
			}
		}
	}
	if changed {
		c.publish(s, false)
	}
	for c.advance(s) {
	}
}

// advance composes the next poll every served partition has, or skips one
// that some served partition will never have, and reports whether it did
// either.
func (c *composer) advance(s *composition) bool {
	serving := c.serving(s)
	if len(serving) == 0 {
		return false
	}
	next := uint64(math.MaxUint64)
	for _, p := range serving {
		q := s.queue[p]
		if len(q) == 0 {
			return false // p has not brought its next poll yet
		}
		next = min(next, q[0].Seq)
	}
	whole := true
	for _, p := range serving {
		whole = whole && s.queue[p][0].Seq == next
	}
	if !whole {
		// A partition's polls come in order: one whose next poll is
		// newer never completed this one (its part was rejected), so
		// the poll cannot be served whole.
		for _, p := range serving {
			if q := s.queue[p]; q[0].Seq == next {
				s.queue[p] = q[1:]
			}
		}
		return true
	}
	clear(s.current)
	for _, p := range serving {
		s.current[p], s.queue[p] = s.queue[p][0], s.queue[p][1:]
	}
	s.composed, s.seq = true, next
	for p, q := range s.queue {
		for len(q) > 0 && (q[0].Seq < next || q[0].Seq == next && s.current[p] != nil) {
			q = q[1:]
		}
		s.queue[p] = q
	}
	c.publish(s, true)
	return true
}

// publish delivers the current poll of the served partitions; with none
// left, an empty snapshot of the last poll's shape, so that the rows of
// the partitions given up leave what is served.
func (c *composer) publish(s *composition, fresh bool) {
	parts := slices.Sorted(maps.Keys(s.current))
	poll := &polllog.Poll{Offsets: map[int32]int64{}}
	var snaps []*snapshot.Snapshot
	for _, p := range parts {
		pp := s.current[p]
		poll.PollID, poll.Partitions = pp.PollID, pp.Partitions
		maps.Copy(poll.Offsets, pp.Offsets)
		poll.Records += pp.Records
		poll.Bytes += pp.Bytes
		snaps = append(snaps, pp.Snapshot)
	}
	var prev *snapshot.Snapshot
	if s.last != nil {
		prev = s.last.Snapshot
	}
	if len(parts) == 0 {
		if s.last == nil {
			return
		}
		poll.PollID, poll.Partitions = s.last.PollID, s.last.Partitions
		snaps = []*snapshot.Snapshot{emptyLike(prev)}
	}
	snap, err := composeSnapshots(snaps, prev)
	if err != nil {
		c.corrupt(polllog.Rejection{Reason: polllog.ReasonCorrupt, Source: s.name, Seq: poll.Seq, Partition: -1, Offset: -1, Err: err})
		return
	}
	poll.Snapshot = snap
	s.last = poll
	c.deliver(poll, fresh)
}

// emptyLike returns a snapshot of s's time, labels and columns without rows.
func emptyLike(s *snapshot.Snapshot) *snapshot.Snapshot {
	empty, err := snapshot.NewBuilder(s.LabelNames(), s.Columns(), 0).Build(s.Time(), s.Metrics())
	if err != nil {
		panic(err) // s built with the same labels and metrics
	}
	return empty
}

// composeSnapshots joins the snapshots of one poll's partitions, whose
// switches are disjoint, into one. The rows are added in the order Build
// sorts them in (switch ids in string order, each switch's rows as its
// partition has them), so nothing is sorted, and when the switches are
// those of prev its index and labels are shared rather than rebuilt.
func composeSnapshots(parts []*snapshot.Snapshot, prev *snapshot.Snapshot) (*snapshot.Snapshot, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	first := parts[0]
	rows := 0
	type switchRef struct {
		id   string
		part *snapshot.Snapshot
	}
	var switches []switchRef
	for _, p := range parts {
		if !slices.Equal(p.LabelNames(), first.LabelNames()) || !slices.Equal(p.Columns(), first.Columns()) {
			return snapshot.Merge(parts, prev) // cannot happen within one poll; Merge knows how anyway
		}
		rows += p.NumRows()
		for _, id := range p.Switches() {
			switches = append(switches, switchRef{id, p})
		}
	}
	slices.SortFunc(switches, func(a, b switchRef) int { return cmp.Compare(a.id, b.id) })
	b := snapshot.NewBuilder(first.LabelNames(), first.Columns(), rows)
	b.ShareIndex(prev)
	values := make([]snapshot.Value, len(first.Columns()))
	for _, sw := range switches {
		start, end, _ := sw.part.SwitchRows(sw.id)
		for row := start; row < end; row++ {
			for col := range values {
				values[col] = sw.part.Value(row, col)
			}
			b.AddRowValues(sw.part.RowLabels(row), values)
		}
	}
	return b.Build(first.Time(), first.Metrics())
}
