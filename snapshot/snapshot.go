// Package snapshot holds the aggregator's data model: an immutable, columnar
// snapshot of one accepted poll, and the read-copy-update Store that publishes
// it. A Snapshot is never modified after Build, so every reader can use it
// without locks; the writer builds the next one aside and swaps a pointer.
package snapshot

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
)

// SwitchLabel is the identity label every row has; it is always LabelNames()[0].
const SwitchLabel = "switch_id"

// PortLabel is the identity label of per-port rows.
const PortLabel = "port"

// Subsystem names the metrics of rows with these labels: per-port rows
// export fabric_port_*, switch rows fabric_switch_*.
func Subsystem(labelNames []string) string {
	if slices.Contains(labelNames, PortLabel) {
		return schema.PortSubsystem
	}
	return schema.SwitchSubsystem
}

// Snapshot is one immutable view of the fabric: rows identified by label
// values (switch_id, and for per-port data port and more), and metric columns.
// Values are stored row-major in two flat slices so that a lookup is two map
// probes and an index, with no allocation.
type Snapshot struct {
	time     time.Time
	timeText string

	labelNames []string
	labels     []string // row-major, len(labelNames) per row
	columns    []string
	metrics    []schema.Metric
	colIndex   map[string]int
	bySwitch   map[string]rowRange
	switches   []string // distinct switch ids, sorted

	bits  []uint64 // row-major, len(columns) per row
	kinds []Kind
}

type rowRange struct{ start, end int32 }

// ErrDuplicateRow is returned by Build when two rows share all label values.
var ErrDuplicateRow = errors.New("duplicate row")

// Time is the snapshot's source time: the newest row timestamp, or the poll
// time when the source gives none.
func (s *Snapshot) Time() time.Time { return s.time }

// WithTime returns a copy of s stamped with t: the same rows, labels and
// values (shared, not copied, so SameRows holds between them), another time.
func (s *Snapshot) WithTime(t time.Time) *Snapshot {
	c := *s
	c.time, c.timeText = t, FormatTime(t)
	return &c
}

// TimeText is Time in RFC 3339 UTC with milliseconds, formatted once.
func (s *Snapshot) TimeText() string { return s.timeText }

// LabelNames are the identity labels of every row; the first is switch_id.
func (s *Snapshot) LabelNames() []string { return s.labelNames }

// Columns are the metric column names in source order.
func (s *Snapshot) Columns() []string { return s.columns }

// Metrics describe the columns as Prometheus metrics, index for index.
func (s *Snapshot) Metrics() []schema.Metric { return s.metrics }

// Column returns the index of a metric column.
func (s *Snapshot) Column(name string) (int, bool) {
	i, ok := s.colIndex[name]
	return i, ok
}

// NumRows is the number of rows.
func (s *Snapshot) NumRows() int { return len(s.labels) / len(s.labelNames) }

// Switches returns the distinct switch ids in string order.
func (s *Snapshot) Switches() []string { return s.switches }

// OfSwitches returns a snapshot of only s's rows of the given switches,
// with s's columns and time; switches s does not have are left out.
func (s *Snapshot) OfSwitches(switchIDs []string) (*Snapshot, error) {
	b := NewBuilder(s.labelNames, s.columns, 0)
	values := make([]Value, len(s.columns))
	for _, id := range switchIDs {
		start, end, ok := s.SwitchRows(id)
		if !ok {
			continue
		}
		for row := start; row < end; row++ {
			for col := range values {
				values[col] = s.Value(row, col)
			}
			b.AddRowValues(s.RowLabels(row), values)
		}
	}
	return b.Build(s.time, s.metrics)
}

// SwitchRows returns the row range [start, end) of one switch.
func (s *Snapshot) SwitchRows(switchID string) (start, end int, ok bool) {
	r, ok := s.bySwitch[switchID]
	return int(r.start), int(r.end), ok
}

// RowLabels returns the label values of a row, index for index with LabelNames.
func (s *Snapshot) RowLabels(row int) []string {
	n := len(s.labelNames)
	return s.labels[row*n : row*n+n : row*n+n]
}

// Value returns the value of a row and column.
func (s *Snapshot) Value(row, col int) Value {
	i := row*len(s.columns) + col
	return Value{bits: s.bits[i], kind: s.kinds[i]}
}

// Series counts the present values, which is the number of series the
// snapshot exports.
func (s *Snapshot) Series() int {
	n := 0
	for _, k := range s.kinds {
		if k != Absent {
			n++
		}
	}
	return n
}

// Builder collects the rows of one snapshot. It is used by a single writer.
type Builder struct {
	labelNames []string
	columns    []string
	labels     []string
	bits       []uint64
	kinds      []Kind
	prev       *Snapshot
	rowsHint   int
	// While shadowing, every row added so far has the labels of prev's row
	// of the same index, and labels holds none of them: a steady fabric's
	// labels are compared, not copied, and its snapshot shares prev's.
	shadowing bool
	shadowed  int // rows added while shadowing
}

// ShareIndex lets Build share prev's row index (and its labels) when the
// new snapshot has the same rows: a steady fabric sends the same switches
// every poll. Called before the first row, it also spares copying the
// labels of rows that AddRowValues finds equal to prev's.
func (b *Builder) ShareIndex(prev *Snapshot) {
	b.prev = prev
	b.shadowing = prev != nil && b.NumRows() == 0 && slices.Equal(prev.labelNames, b.labelNames)
}

// NewBuilder starts a snapshot with the given identity labels (the first must
// be switch_id) and metric columns, sized for rowsHint rows.
func NewBuilder(labelNames, columns []string, rowsHint int) *Builder {
	return &Builder{
		labelNames: labelNames,
		columns:    columns,
		bits:       make([]uint64, 0, rowsHint*len(columns)),
		kinds:      make([]Kind, 0, rowsHint*len(columns)),
		rowsHint:   rowsHint,
	}
}

// appendLabels appends a row's labels, first copying the rows added while
// shadowing: from here on the rows differ from prev's.
func (b *Builder) appendLabels(labels []string) {
	if b.labels == nil || b.shadowing {
		nl := len(b.labelNames)
		all := make([]string, 0, max(b.rowsHint, b.NumRows()+1)*nl)
		if b.shadowing {
			all = append(all, b.prev.labels[:b.shadowed*nl]...)
			b.shadowing = false
		}
		b.labels = all
	}
	b.labels = append(b.labels, labels...)
}

// AddRow appends a row whose values are all absent and returns its index.
// labels must have one value per label name.
func (b *Builder) AddRow(labels ...string) int {
	b.appendLabels(labels)
	b.bits = append(b.bits, make([]uint64, len(b.columns))...)
	b.kinds = append(b.kinds, make([]Kind, len(b.columns))...)
	return b.NumRows() - 1
}

// AddRowValues appends a row with one value per column, absent ones
// included, and returns its index: AddRow and a Set per column in one pass.
func (b *Builder) AddRowValues(labels []string, values []Value) int {
	if len(values) != len(b.columns) {
		panic(fmt.Sprintf("snapshot: %d values for %d columns", len(values), len(b.columns)))
	}
	if b.shadowing && b.shadowed < b.prev.NumRows() && slices.Equal(labels, b.prev.RowLabels(b.shadowed)) {
		b.shadowed++
	} else {
		b.appendLabels(labels)
	}
	n := len(b.bits)
	b.bits = slices.Grow(b.bits, len(values))[:n+len(values)]
	b.kinds = slices.Grow(b.kinds, len(values))[:n+len(values)]
	for i, v := range values {
		b.bits[n+i], b.kinds[n+i] = v.bits, v.kind
	}
	return b.NumRows() - 1
}

// NumRows is the number of rows added so far.
func (b *Builder) NumRows() int {
	if b.shadowing {
		return b.shadowed
	}
	return len(b.labels) / max(len(b.labelNames), 1)
}

// Set stores the value of one cell of a row added before.
func (b *Builder) Set(row, col int, v Value) {
	i := row*len(b.columns) + col
	b.bits[i], b.kinds[i] = v.bits, v.kind
}

// Build sorts the rows (switch_id in string order, further labels in natural
// order), indexes them and returns the immutable snapshot. The builder must
// not be used afterwards. metrics describes the columns, index for index.
func (b *Builder) Build(t time.Time, metrics []schema.Metric) (*Snapshot, error) {
	if len(b.labelNames) == 0 || b.labelNames[0] != SwitchLabel {
		return nil, fmt.Errorf("first label must be %s, have %v", SwitchLabel, b.labelNames)
	}
	if len(metrics) != len(b.columns) {
		return nil, fmt.Errorf("%d metric descriptions for %d columns", len(metrics), len(b.columns))
	}
	// A steady source sends the rows of the last snapshot, sorted already:
	// then the sort check, the duplicate check and the index are its.
	if b.shadowing && b.shadowed < b.prev.NumRows() {
		b.appendLabels(nil) // prev's first rows only: a snapshot of its own
	}
	sameAsPrev := b.shadowing || b.sameRows(b.prev)
	if !sameAsPrev {
		b.sortRows()
		sameAsPrev = b.sameRows(b.prev)
	}
	s := &Snapshot{
		time:       t,
		timeText:   FormatTime(t),
		labelNames: b.labelNames,
		labels:     b.labels,
		columns:    b.columns,
		metrics:    metrics,
		colIndex:   make(map[string]int, len(b.columns)),
		bits:       b.bits,
		kinds:      b.kinds,
	}
	for i, c := range b.columns {
		s.colIndex[c] = i
	}
	if prev := b.prev; sameAsPrev {
		s.labelNames, s.labels = prev.labelNames, prev.labels
		s.bySwitch, s.switches = prev.bySwitch, prev.switches
		return s, nil
	}
	if err := s.index(); err != nil {
		return nil, err
	}
	return s, nil
}

// sameRows reports whether the rows added so far are prev's, in its order.
func (b *Builder) sameRows(prev *Snapshot) bool {
	return prev != nil && slices.Equal(prev.labelNames, b.labelNames) && slices.Equal(prev.labels, b.labels)
}

// SameRows reports whether two snapshots have the same rows in the same
// order, which lets per-snapshot work (an index, a rendered label set) be
// carried over.
func (s *Snapshot) SameRows(other *Snapshot) bool {
	return other != nil && (s == other || len(s.labels) > 0 && &s.labels[0] == &other.labels[0])
}

func (s *Snapshot) index() error {
	n := s.NumRows()
	s.bySwitch = make(map[string]rowRange, n)
	for row := 0; row < n; row++ {
		if row > 0 && compareLabels(s.RowLabels(row-1), s.RowLabels(row)) == 0 {
			return fmt.Errorf("%w: %v", ErrDuplicateRow, s.RowLabels(row))
		}
		id := s.RowLabels(row)[0]
		r, ok := s.bySwitch[id]
		if !ok {
			r.start = int32(row)
			s.switches = append(s.switches, id)
		}
		r.end = int32(row + 1)
		s.bySwitch[id] = r
	}
	return nil
}

// sortRows orders the rows; sources usually send them sorted already, so
// the common case is one linear check.
func (b *Builder) sortRows() {
	n := b.NumRows()
	nl := len(b.labelNames)
	rowLabels := func(r int) []string { return b.labels[r*nl : r*nl+nl] }
	sorted := true
	for r := 1; r < n && sorted; r++ {
		sorted = compareLabels(rowLabels(r-1), rowLabels(r)) <= 0
	}
	if sorted {
		return
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return compareLabels(rowLabels(x), rowLabels(y)) })
	nc := len(b.columns)
	labels := make([]string, 0, len(b.labels))
	bits := make([]uint64, 0, len(b.bits))
	kinds := make([]Kind, 0, len(b.kinds))
	for _, r := range order {
		labels = append(labels, rowLabels(r)...)
		bits = append(bits, b.bits[r*nc:r*nc+nc]...)
		kinds = append(kinds, b.kinds[r*nc:r*nc+nc]...)
	}
	b.labels, b.bits, b.kinds = labels, bits, kinds
}

// compareLabels orders rows: the switch id in plain string order (what the
// REST API promises), further labels such as port numerically when both are
// integers, so port 10 comes after port 9.
func compareLabels(a, b []string) int {
	for i := range a {
		if c := compareLabel(i, a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func compareLabel(i int, a, b string) int {
	if i > 0 && a != b {
		if c, ok := compareNumbers(a, b); ok {
			return c
		}
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareNumbers orders two decimal numbers without parsing them: the
// shorter is smaller once leading zeros are set aside, and numbers of one
// length compare as strings. ok is false unless both are all digits.
// Equal numbers written differently ("01", "1") compare as their strings,
// so that rows with different labels never compare equal.
func compareNumbers(a, b string) (c int, ok bool) {
	if !isDigits(a) || !isDigits(b) {
		return 0, false
	}
	x, y := strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	switch {
	case len(x) != len(y):
		return cmp.Compare(len(x), len(y)), true
	case x != y:
		return strings.Compare(x, y), true
	}
	return strings.Compare(a, b), true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i]-'0' > 9 {
			return false
		}
	}
	return true
}

// FormatTime formats a time as the API shows it: RFC 3339, UTC, milliseconds.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// dropDuplicates removes rows whose labels equal the row before them (so
// the rows must be sorted, and the first of equal rows stays) and returns
// how many went.
func (b *Builder) dropDuplicates() int {
	nl, nc := len(b.labelNames), len(b.columns)
	n := b.NumRows()
	kept := 0
	for row := range n {
		labels := b.labels[row*nl : row*nl+nl]
		if kept > 0 && compareLabels(b.labels[(kept-1)*nl:kept*nl], labels) == 0 {
			continue
		}
		if kept != row {
			copy(b.labels[kept*nl:], labels)
			copy(b.bits[kept*nc:], b.bits[row*nc:row*nc+nc])
			copy(b.kinds[kept*nc:], b.kinds[row*nc:row*nc+nc])
		}
		kept++
	}
	b.labels, b.bits, b.kinds = b.labels[:kept*nl], b.bits[:kept*nc], b.kinds[:kept*nc]
	return n - kept
}
