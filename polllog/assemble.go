package polllog

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Reason says why the Assembler rejected a record or a poll.
type Reason string

// Rejection reasons. unknown_version and corrupt count records (the poll
// they belonged to then fails its count and is dropped as incomplete); the
// others count polls, once each however many of their records arrive.
const (
	ReasonUnknownVersion Reason = "unknown_version"
	ReasonCorrupt        Reason = "corrupt"
	// ReasonIncomplete: a later poll of the source appeared in a partition
	// before this poll's marker did, a partition held a different number
	// of records than its marker announced, or the pending caps pushed the
	// poll out.
	ReasonIncomplete Reason = "incomplete"
	// ReasonPartialStart is an incomplete poll whose missing records lie
	// before the first record the reader read from that partition: a
	// reader that starts in the middle of the log sees the tail of the
	// poll its replay window cut.
	ReasonPartialStart Reason = "partial_start"
	ReasonDuplicate    Reason = "duplicate"
	ReasonOutOfOrder   Reason = "out_of_order"
)

// Reasons lists every rejection reason, for metrics that export each from 0.
var Reasons = []Reason{ReasonUnknownVersion, ReasonCorrupt, ReasonIncomplete, ReasonPartialStart, ReasonDuplicate, ReasonOutOfOrder}

// Rejection is one rejected record or poll.
type Rejection struct {
	Reason    Reason
	Source    string // empty when the record could not be decoded
	Seq       uint64
	Partition int32 // where the record that decided it was read
	Offset    int64
	Err       error
}

func (r Rejection) Error() string {
	if r.Source == "" {
		return fmt.Sprintf("%s: partition %d offset %d: %v", r.Reason, r.Partition, r.Offset, r.Err)
	}
	return fmt.Sprintf("%s: poll %s/%d (partition %d offset %d): %v", r.Reason, r.Source, r.Seq, r.Partition, r.Offset, r.Err)
}

// Poll is one complete poll, assembled.
type Poll struct {
	PollID
	Snapshot   *snapshot.Snapshot
	Partitions int             // the topic's partition count when it was written
	Offsets    map[int32]int64 // offset of the poll's end marker in each partition read
	Records    int             // data records read
	Bytes      int             // bytes of the record values read, markers included
}

// Defaults of AssemblerConfig.
const (
	DefaultMaxPendingPolls = 8
	DefaultMaxPendingBytes = 1 << 30
	DefaultMaxPendingAge   = 10 * time.Minute
	DefaultMaxAhead        = 2
)

// AssemblerConfig configures an Assembler.
type AssemblerConfig struct {
	// Table names the columns of the snapshots, as the parser does.
	Table *schema.Table
	// Partitions is the set of partitions the reader reads; nil means all
	// of them, however many a poll was written to. A poll is complete when
	// the markers of the partitions in this set have arrived.
	Partitions []int32
	// MaxPendingPolls caps the incomplete polls held per source: past it,
	// the oldest is dropped. MaxPendingBytes caps the record bytes of all
	// incomplete polls together, dropping the oldest polls first.
	// MaxPendingAge drops a poll still incomplete that long after its
	// first record arrived. Zero means the default.
	MaxPendingPolls int
	MaxPendingBytes int
	MaxPendingAge   time.Duration
	// MaxAhead is how many polls of a source a partition may complete
	// before the reader should pause it (see Ahead). Zero means the default.
	MaxAhead int
	// Now is the clock for MaxPendingAge; nil means time.Now.
	Now func() time.Time
}

// Assembler rebuilds polls from the records of every partition, fed in
// offset order per partition and in any interleaving of partitions. It
// hands back each source's polls whole, in sequence order, and keeps at
// most the configured number of incomplete ones. It belongs to one reader
// goroutine.
type Assembler struct {
	cfg          AssemblerConfig
	owned        map[int32]bool // nil: every partition
	sources      map[string]*sourceState
	pendingBytes int
	counts       map[Reason]uint64
	arrivals     uint64 // orders pending polls by first arrival
	key          []byte // scratch for a data record's key
	rows         rowDecoder
}

// NewAssembler returns an Assembler.
func NewAssembler(cfg AssemblerConfig) *Assembler {
	if cfg.Table == nil {
		cfg.Table = schema.Default()
	}
	cfg.MaxPendingPolls = cmp.Or(cfg.MaxPendingPolls, DefaultMaxPendingPolls)
	cfg.MaxPendingBytes = cmp.Or(cfg.MaxPendingBytes, DefaultMaxPendingBytes)
	cfg.MaxPendingAge = cmp.Or(cfg.MaxPendingAge, DefaultMaxPendingAge)
	cfg.MaxAhead = cmp.Or(cfg.MaxAhead, DefaultMaxAhead)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Assembler{cfg: cfg, sources: map[string]*sourceState{}, counts: map[Reason]uint64{}}
	if cfg.Partitions != nil {
		a.owned = map[int32]bool{}
		for _, p := range cfg.Partitions {
			a.owned[p] = true
		}
	}
	return a
}

// sourceState is what the Assembler knows of one source.
type sourceState struct {
	name        string
	emitted     bool
	lastEmitted uint64
	pending     []*pendingPoll    // by seq
	settled     map[uint64]Reason // recently rejected or dropped seqs, so stragglers count once
	partSeq     map[int32]uint64  // newest seq seen in each partition
	firstSeq    map[int32]uint64  // seq of the first record read from each partition
	prev        *snapshot.Snapshot
	metricsFor  []string // the columns and subsystem metrics were resolved for
	subsystem   string
	metrics     []schema.Metric
	// The label names and columns of the last poll begun, encoded and
	// decoded: a steady source's next poll shares them.
	names      []byte
	labelNames []string
	columns    []string
}

// maxSettled bounds the memory of rejected seqs per source.
const maxSettled = 64

// pendingPoll is an incomplete poll. It keeps its data records as they
// came, checked but encoded (slices of the values given to Add, which
// MaxPendingBytes counts), and decodes them once, in switch order, when
// the poll is complete.
type pendingPoll struct {
	PollID
	snapTime    int64 // Unix nanoseconds
	partitions  int
	names       []byte // label names and columns, encoded
	labelNames  []string
	columns     []string
	counts      map[int32]int   // data records seen per partition
	markers     map[int32]int64 // end marker offsets
	data        []dataRecord
	rows        int
	records     int
	bytes       int
	arrival     uint64
	firstRecord time.Time
	duplicate   bool // a second copy was seen and counted
}

// dataRecord is what a pending poll keeps of a data record.
type dataRecord struct {
	switchID []byte
	chunk    int
	rows     int
	rowData  []byte
}

// Add feeds one record read at offset of partition. It returns the polls
// this record completed (in order) and what it caused to be rejected.
// The Assembler keeps value, not a copy, until the poll it belongs to is
// complete or dropped: the caller must not change it.
func (a *Assembler) Add(partition int32, offset int64, value []byte) ([]*Poll, []Rejection) {
	var out result
	a.expire(&out)
	e, err := parseRecord(value)
	if err == nil && e.kind == KindCheckpoint {
		err = fmt.Errorf("%w: a checkpoint record in the data topic", ErrCorrupt)
	}
	if err == nil && e.kind == KindEnd && e.partition != partition {
		err = fmt.Errorf("%w: end marker of partition %d read from partition %d", ErrCorrupt, e.partition, partition)
	}
	if err == nil && e.kind == KindData {
		a.key = append(append(append(a.key[:0], e.source...), '/'), e.switchID...)
		if want := Partition(a.key, e.partitions); want != partition {
			err = fmt.Errorf("%w: switch %q belongs in partition %d, read from %d", ErrCorrupt, e.switchID, want, partition)
		}
	}
	if err != nil {
		reason := ReasonCorrupt
		if errors.Is(err, ErrUnknownVersion) {
			reason = ReasonUnknownVersion
		}
		out.reject(a, Rejection{Reason: reason, Partition: partition, Offset: offset, Err: err})
		return out.polls, out.rejected
	}
	if !a.reads(partition, e.partitions) {
		return out.polls, out.rejected // another reader's partition
	}
	a.add(a.source(e.source), &e, partition, offset, len(value), &out)
	return out.polls, out.rejected
}

type result struct {
	polls    []*Poll
	rejected []Rejection
}

func (r *result) reject(a *Assembler, rej Rejection) {
	a.counts[rej.Reason]++
	r.rejected = append(r.rejected, rej)
}

func (a *Assembler) reads(partition int32, partitions int) bool {
	return int(partition) < partitions && (a.owned == nil || a.owned[partition])
}

func (a *Assembler) source(name []byte) *sourceState {
	s, ok := a.sources[string(name)]
	if !ok {
		s = &sourceState{name: string(name), settled: map[uint64]Reason{}, partSeq: map[int32]uint64{}, firstSeq: map[int32]uint64{}}
		a.sources[s.name] = s
	}
	return s
}

func (a *Assembler) add(src *sourceState, e *record, partition int32, offset int64, size int, out *result) {
	rej := func(reason Reason, format string, args ...any) Rejection {
		return Rejection{Reason: reason, Source: src.name, Seq: e.seq, Partition: partition, Offset: offset, Err: fmt.Errorf(format, args...)}
	}
	if _, done := src.settled[e.seq]; done {
		return // the rest of a poll already rejected
	}
	if src.emitted && e.seq <= src.lastEmitted {
		if e.seq == src.lastEmitted {
			a.settle(src, rej(ReasonDuplicate, "poll already applied"), out)
		} else {
			a.settle(src, rej(ReasonOutOfOrder, "poll older than the last applied one, %d", src.lastEmitted), out)
		}
		return
	}
	if newest, seen := src.partSeq[partition]; e.seq < newest {
		a.drop(src, e.seq, rej(ReasonOutOfOrder, "after poll %d in the same partition", newest), out)
		return
	} else if !seen {
		src.firstSeq[partition] = e.seq
	}
	src.partSeq[partition] = e.seq
	// A later poll in this partition ends every earlier one still waiting
	// for its marker here: that marker will never come.
	for i := 0; i < len(src.pending) && src.pending[i].Seq < e.seq; {
		q := src.pending[i]
		if _, ok := q.markers[partition]; !ok && a.reads(partition, q.partitions) {
			a.drop(src, q.Seq, rej(ReasonIncomplete, "poll %d began in partition %d before this poll's end marker", e.seq, partition), out)
			continue // q is gone from src.pending
		}
		i++
	}
	p, err := a.pending(src, e)
	if err != nil {
		a.drop(src, e.seq, rej(ReasonCorrupt, "%v", err), out)
		return
	}
	if p == nil {
		p = a.newPending(src, e, out)
	}
	if _, ended := p.markers[partition]; ended {
		// The partition already held exactly the records its marker
		// announced: this is the poll written again (a retry after a
		// commit whose answer was lost), while another partition lags.
		if !p.duplicate {
			p.duplicate = true
			out.reject(a, rej(ReasonDuplicate, "poll written again"))
		}
		return
	}
	p.bytes += size
	a.pendingBytes += size
	switch e.kind {
	case KindData:
		p.counts[partition]++
		p.records++
		p.rows += e.rows
		p.data = append(p.data, dataRecord{switchID: e.switchID, chunk: e.chunk, rows: e.rows, rowData: e.rowData})
	case KindEnd:
		if got := p.counts[partition]; got != e.dataRecords {
			a.drop(src, e.seq, rej(ReasonIncomplete, "partition %d held %d data records, its marker says %d", partition, got, e.dataRecords), out)
			return
		}
		p.markers[partition] = offset
		if a.complete(p) {
			a.emit(src, p, partition, offset, out)
			return
		}
	}
	a.enforceCaps(out)
}

// pending returns the pending poll e belongs to (nil if none), or an error
// when e disagrees with the poll's other records.
func (a *Assembler) pending(src *sourceState, e *record) (*pendingPoll, error) {
	i, found := slices.BinarySearchFunc(src.pending, e.seq, func(p *pendingPoll, seq uint64) int { return cmpUint(p.Seq, seq) })
	if !found {
		return nil, nil
	}
	p := src.pending[i]
	switch {
	case p.snapTime != e.snapTime || p.PublishTime.UnixNano() != e.publishTime:
		return nil, fmt.Errorf("records of one poll disagree on its times")
	case p.partitions != e.partitions:
		return nil, fmt.Errorf("records of one poll disagree on its partitions: %d and %d", p.partitions, e.partitions)
	case !sameNames(p, e.names):
		return nil, fmt.Errorf("records of one poll disagree on its labels or columns")
	}
	return p, nil
}

// sameNames reports whether names (encoded) are p's label names and
// columns: the same bytes, or, should a writer encode a length in more
// bytes than it needs, the same strings.
func sameNames(p *pendingPoll, names []byte) bool {
	if bytes.Equal(p.names, names) {
		return true
	}
	labels, columns := decodeNames(names)
	return slices.Equal(p.labelNames, labels) && slices.Equal(p.columns, columns)
}

func cmpUint(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (a *Assembler) newPending(src *sourceState, e *record, out *result) *pendingPoll {
	for len(src.pending) >= a.cfg.MaxPendingPolls {
		q := src.pending[0]
		a.drop(src, q.Seq, Rejection{Reason: ReasonIncomplete, Source: src.name, Seq: q.Seq, Partition: -1, Offset: -1,
			Err: fmt.Errorf("more than %d polls of the source pending", a.cfg.MaxPendingPolls)}, out)
	}
	if !bytes.Equal(src.names, e.names) {
		src.names = slices.Clone(e.names)
		src.labelNames, src.columns = decodeNames(e.names)
	}
	a.arrivals++
	p := &pendingPoll{
		PollID:   PollID{Source: src.name, Seq: e.seq, PublishTime: unixTime(e.publishTime)},
		snapTime: e.snapTime, partitions: e.partitions,
		names: src.names, labelNames: src.labelNames, columns: src.columns,
		counts: map[int32]int{}, markers: map[int32]int64{},
		arrival: a.arrivals, firstRecord: a.cfg.Now(),
	}
	i, _ := slices.BinarySearchFunc(src.pending, e.seq, func(p *pendingPoll, seq uint64) int { return cmpUint(p.Seq, seq) })
	src.pending = slices.Insert(src.pending, i, p)
	return p
}

// complete reports whether every partition read has delivered its marker.
func (a *Assembler) complete(p *pendingPoll) bool {
	for part := range p.partitions {
		if a.reads(int32(part), p.partitions) {
			if _, ok := p.markers[int32(part)]; !ok {
				return false
			}
		}
	}
	return true
}

func (a *Assembler) emit(src *sourceState, p *pendingPoll, partition int32, offset int64, out *result) {
	// Polls before this one can no longer be applied: polls are applied
	// in order. (Normally there are none: a poll still waiting would have
	// been superseded in the partition it was missing.)
	for len(src.pending) > 0 && src.pending[0].Seq < p.Seq {
		q := src.pending[0]
		a.drop(src, q.Seq, Rejection{Reason: ReasonIncomplete, Source: src.name, Seq: q.Seq, Partition: partition, Offset: offset,
			Err: fmt.Errorf("poll %d completed first", p.Seq)}, out)
	}
	a.remove(src, p)
	snap, err := a.build(src, p)
	if err != nil {
		a.settle(src, Rejection{Reason: ReasonCorrupt, Source: src.name, Seq: p.Seq, Partition: partition, Offset: offset, Err: err}, out)
		return
	}
	src.emitted, src.lastEmitted, src.prev = true, p.Seq, snap
	if p.duplicate {
		src.settled[p.Seq] = ReasonDuplicate // counted already
	}
	for seq := range src.settled {
		if seq <= p.Seq-min(p.Seq, maxSettled) {
			delete(src.settled, seq)
		}
	}
	out.polls = append(out.polls, &Poll{
		PollID: p.PollID, Snapshot: snap, Partitions: p.partitions,
		Offsets: maps.Clone(p.markers), Records: p.records, Bytes: p.bytes,
	})
}

// metrics resolves the poll's columns, once per column set of a source.
func (a *Assembler) metrics(src *sourceState, p *pendingPoll) []schema.Metric {
	subsystem := snapshot.Subsystem(p.labelNames)
	if src.metrics == nil || subsystem != src.subsystem || !slices.Equal(src.metricsFor, p.columns) {
		src.metrics, _ = a.cfg.Table.Resolve(subsystem, p.columns)
		src.metricsFor, src.subsystem = p.columns, subsystem
	}
	return src.metrics
}

// drop rejects the poll seq of src, pending or not, and forgets it.
func (a *Assembler) drop(src *sourceState, seq uint64, rej Rejection, out *result) {
	rej.Seq = seq
	if first, ok := src.firstSeq[rej.Partition]; rej.Reason == ReasonIncomplete && ok && seq <= first {
		rej.Reason = ReasonPartialStart
	}
	i, found := slices.BinarySearchFunc(src.pending, seq, func(p *pendingPoll, seq uint64) int { return cmpUint(p.Seq, seq) })
	if found {
		a.remove(src, src.pending[i])
	}
	a.settle(src, rej, out)
}

func (a *Assembler) remove(src *sourceState, p *pendingPoll) {
	a.pendingBytes -= p.bytes
	src.pending = slices.DeleteFunc(src.pending, func(q *pendingPoll) bool { return q == p })
}

// settle counts a rejected poll once and remembers it, so that its other
// records are ignored.
func (a *Assembler) settle(src *sourceState, rej Rejection, out *result) {
	if _, ok := src.settled[rej.Seq]; ok {
		return
	}
	if len(src.settled) >= maxSettled {
		delete(src.settled, slices.Min(slices.Collect(maps.Keys(src.settled))))
	}
	src.settled[rej.Seq] = rej.Reason
	out.reject(a, rej)
}

// enforceCaps drops the oldest pending polls while their bytes are over the cap.
func (a *Assembler) enforceCaps(out *result) {
	for a.pendingBytes > a.cfg.MaxPendingBytes {
		src, p := a.oldest(func(*pendingPoll) bool { return true })
		if p == nil {
			return
		}
		a.drop(src, p.Seq, Rejection{Reason: ReasonIncomplete, Source: src.name, Seq: p.Seq, Partition: -1, Offset: -1,
			Err: fmt.Errorf("pending polls over %d bytes", a.cfg.MaxPendingBytes)}, out)
	}
}

// expire drops pending polls older than MaxPendingAge.
func (a *Assembler) expire(out *result) {
	deadline := a.cfg.Now().Add(-a.cfg.MaxPendingAge)
	for {
		src, p := a.oldest(func(p *pendingPoll) bool { return p.firstRecord.Before(deadline) })
		if p == nil {
			return
		}
		a.drop(src, p.Seq, Rejection{Reason: ReasonIncomplete, Source: src.name, Seq: p.Seq, Partition: -1, Offset: -1,
			Err: fmt.Errorf("still incomplete %v after its first record", a.cfg.MaxPendingAge)}, out)
	}
}

// Expire drops the polls that have been pending longer than MaxPendingAge
// and returns them; a reader calls it when no record has come for a while.
func (a *Assembler) Expire() []Rejection {
	var out result
	a.expire(&out)
	return out.rejected
}

func (a *Assembler) oldest(match func(*pendingPoll) bool) (*sourceState, *pendingPoll) {
	var (
		bestSrc *sourceState
		best    *pendingPoll
	)
	for _, src := range a.sources {
		for _, p := range src.pending {
			if match(p) && (best == nil || p.arrival < best.arrival) {
				bestSrc, best = src, p
			}
		}
	}
	return bestSrc, best
}

// Ahead returns the partitions, in order, that have delivered the end
// markers of MaxAhead or more polls of some source that are still waiting
// for other partitions. A reader pauses them until the others catch up,
// which keeps the pending polls (and memory) small while it replays a log
// whose partitions it fetches at different speeds.
func (a *Assembler) Ahead() []int32 {
	ended := map[int32]int{}
	var ahead []int32
	for _, src := range a.sources {
		clear(ended)
		for _, p := range src.pending {
			for part := range p.markers {
				ended[part]++
				if ended[part] == a.cfg.MaxAhead && !slices.Contains(ahead, part) {
					ahead = append(ahead, part)
				}
			}
		}
	}
	slices.Sort(ahead)
	return ahead
}

// IsAhead reports whether partition is one of Ahead's.
func (a *Assembler) IsAhead(partition int32) bool {
	for _, src := range a.sources {
		n := 0
		for _, p := range src.pending {
			if _, ok := p.markers[partition]; ok {
				if n++; n >= a.cfg.MaxAhead {
					return true
				}
			}
		}
	}
	return false
}

// Rejected returns how many records or polls were rejected, by reason.
func (a *Assembler) Rejected() map[Reason]uint64 { return maps.Clone(a.counts) }

// Pending returns how many incomplete polls are held and their record bytes.
func (a *Assembler) Pending() (polls, bytes int) {
	for _, src := range a.sources {
		polls += len(src.pending)
	}
	return polls, a.pendingBytes
}
