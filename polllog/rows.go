package polllog

import (
	"fmt"
	"slices"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The records also carry rows between the replicas of a partitioned
// aggregator: a replica asked for some switches answers with the data
// records of their rows, and the replica that asked rebuilds snapshots from
// them, every value exact. Such an answer is one HTTP body, whole or failed,
// so it needs no end markers: EncodeSwitches writes data records only, and a
// Rebuilder checks that every chunk of every switch arrived.

// EncodeSwitches returns the data records of the given switches' rows of s,
// in the order given (every switch of s, in order, when switches is nil);
// a switch s does not have is left out. The records are those Encode
// writes for the switches, without the end markers.
func (enc *Encoder) EncodeSwitches(id PollID, s *snapshot.Snapshot, switches []string) ([]Record, error) {
	p, err := enc.newPoll(id, s)
	if err != nil {
		return nil, err
	}
	if switches == nil {
		switches = s.Switches()
	}
	for _, sw := range switches {
		if _, _, ok := s.SwitchRows(sw); !ok {
			continue
		}
		if err := p.addSwitch(sw); err != nil {
			return nil, err
		}
	}
	return p.records(), nil
}

// Rebuilder rebuilds snapshots from data records, one snapshot per poll
// (source and sequence number), without the end markers an Assembler needs.
// It belongs to one goroutine.
type Rebuilder struct {
	table *schema.Table
	polls []*rebuiltPoll
}

type rebuiltPoll struct {
	PollID
	snapTime   time.Time
	labelNames []string
	columns    []string
	builder    *snapshot.Builder
	// chunks is, per switch, the chunks read and the chunk count.
	chunks map[string][2]int
}

// NewRebuilder returns a Rebuilder whose snapshots name their columns from
// table (schema.Default() when nil).
func NewRebuilder(table *schema.Table) *Rebuilder {
	if table == nil {
		table = schema.Default()
	}
	return &Rebuilder{table: table}
}

// Add adds the rows of a data record. A record of another kind, a chunk out
// of order or a record that disagrees with the others of its poll on the
// poll's time, labels or columns is an error wrapping ErrCorrupt.
func (r *Rebuilder) Add(e *Entry) error {
	if e.Kind != KindData {
		return fmt.Errorf("%w: a %s record among rows", ErrCorrupt, e.Kind)
	}
	p, err := r.poll(e)
	if err != nil {
		return err
	}
	seen := p.chunks[e.Switch]
	if e.Chunk != seen[0] || (seen[0] > 0 && e.Chunks != seen[1]) {
		return fmt.Errorf("%w: switch %q: chunk %d of %d after %d chunks", ErrCorrupt, e.Switch, e.Chunk, e.Chunks, seen[0])
	}
	p.chunks[e.Switch] = [2]int{seen[0] + 1, e.Chunks}
	for i := range e.RowsInRecord {
		p.builder.AddRowValues(e.Row(i))
	}
	return nil
}

// poll returns the poll e belongs to, started if it is the first record.
func (r *Rebuilder) poll(e *Entry) (*rebuiltPoll, error) {
	i := slices.IndexFunc(r.polls, func(p *rebuiltPoll) bool { return p.Source == e.Source && p.Seq == e.Seq })
	if i < 0 {
		p := &rebuiltPoll{
			PollID: e.PollID, snapTime: e.SnapshotTime, labelNames: e.LabelNames, columns: e.Columns,
			builder: snapshot.NewBuilder(e.LabelNames, e.Columns, 0), chunks: map[string][2]int{},
		}
		r.polls = append(r.polls, p)
		return p, nil
	}
	p := r.polls[i]
	if !p.snapTime.Equal(e.SnapshotTime) || !slices.Equal(p.labelNames, e.LabelNames) || !slices.Equal(p.columns, e.Columns) {
		return nil, fmt.Errorf("%w: records of poll %s/%d disagree on its time, labels or columns", ErrCorrupt, e.Source, e.Seq)
	}
	return p, nil
}

// Snapshots builds one snapshot per poll, in the order of each poll's first
// record. Every switch must have all its chunks; a duplicate row is an
// error. The Rebuilder must not be used afterwards.
func (r *Rebuilder) Snapshots() ([]*snapshot.Snapshot, error) {
	out := make([]*snapshot.Snapshot, 0, len(r.polls))
	for _, p := range r.polls {
		for sw, c := range p.chunks {
			if c[0] != c[1] {
				return nil, fmt.Errorf("%w: switch %q: %d of its %d chunks", ErrCorrupt, sw, c[0], c[1])
			}
		}
		subsystem := snapshot.Subsystem(p.labelNames)
		metrics, _ := r.table.Resolve(subsystem, p.columns)
		s, err := p.builder.Build(p.snapTime, metrics)
		if err != nil {
			return nil, fmt.Errorf("%w: poll %s/%d: %w", ErrCorrupt, p.Source, p.Seq, err)
		}
		out = append(out, s)
	}
	return out, nil
}
