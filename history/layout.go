package history

import (
	"math"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// layout is the series table of a block: which series it holds and in what
// order. A snapshot's series are the cross product of its metric columns and
// its rows, so the table keeps one entry per row and per column, never per
// series, and blocks whose snapshots have the same columns and rows share one
// layout (the steady state of a fabric: every poll reuses the previous one).
//
// Series ids are ranks in label order: id = colRank*numRows + rowRank, where
// columns are ranked by metric name and rows by their label set. With
// __name__ as the first label name, id order is labels.Compare order, so a
// selection comes out sorted and a metric's series are contiguous.
type layout struct {
	metrics    []schema.Metric // the columns, as the snapshot described them
	labelNames []string        // row label names, snapshot order
	names      []string        // metric name per column, snapshot order
	scales     []float64       // the scale gather applies per column
	rowValues  []string        // row-major label values, len(labelNames) per row
	numRows    int

	rowOrder []int32 // rowRank -> row
	colOrder []int32 // colRank -> column
	// labelOrdered is false when a row label name sorts before __name__, and
	// the id order is then not labels.Compare order.
	labelOrdered bool

	// postings holds, per row label name and value, the sorted row ranks
	// having that value ("" included, for rows where the label is empty).
	postings map[string]map[string][]int32

	// bytes estimates what the layout holds, for View.Stats.
	bytes int
}

// newLayout builds the series table of a snapshot.
func newLayout(s *snapshot.Snapshot) *layout {
	l := &layout{
		labelNames: slices.Clone(s.LabelNames()),
		numRows:    s.NumRows(),
	}
	l.setColumns(s.Metrics())
	l.rowValues = make([]string, 0, l.numRows*len(l.labelNames))
	for row := range l.numRows {
		l.rowValues = append(l.rowValues, s.RowLabels(row)...)
	}
	l.rank()
	l.finish()
	return l
}

// setColumns sets the columns' descriptions, metric names and scales.
func (l *layout) setColumns(metrics []schema.Metric) {
	l.metrics = metrics
	l.names, l.scales = make([]string, len(metrics)), make([]float64, len(metrics))
	for i, m := range metrics {
		l.names[i], l.scales[i] = m.Name, m.Scale
	}
}

// finish derives the rest of a layout from its columns, label names, rows
// and their orders: the postings and the size estimate.
func (l *layout) finish() {
	l.labelOrdered = true
	for _, n := range l.labelNames {
		if n < model.MetricNameLabel {
			l.labelOrdered = false
		}
	}
	l.index()
	l.bytes = l.size()
}

// Estimated sizes of what a layout holds: a string header, and a map entry
// of postings (key, slice header, and the map's own share of a slot).
const (
	stringHeaderBytes = 16
	postingEntryBytes = 16 + 24 + 16
)

// size estimates the bytes the layout holds: its label values (a header
// per row and label; the text once per distinct value, as the parser
// interns it, and the layout keeps it alive), its row and column orders,
// and its postings (an entry per label value, four bytes per row and
// label).
func (l *layout) size() int {
	n := len(l.rowValues)*stringHeaderBytes + 4*(len(l.rowOrder)+len(l.colOrder)) + 8*len(l.scales)
	for _, name := range l.names {
		n += stringHeaderBytes + len(name)
	}
	for _, byValue := range l.postings {
		for v, rows := range byValue {
			n += postingEntryBytes + len(v) + 4*cap(rows)
		}
	}
	return n
}

// sameAs reports whether s has exactly the columns and rows of l, so that
// its block can share l.
func (l *layout) sameAs(s *snapshot.Snapshot) bool {
	if s.NumRows() != l.numRows || !slices.Equal(s.LabelNames(), l.labelNames) || !l.sameColumns(s) {
		return false
	}
	n := len(l.labelNames)
	for row := range l.numRows {
		if !slices.Equal(s.RowLabels(row), l.rowValues[row*n:row*n+n]) {
			return false
		}
	}
	return true
}

// sameColumns reports whether s's columns have l's metric names and scales
// (encoded runs rely on the scales of their layout).
func (l *layout) sameColumns(s *snapshot.Snapshot) bool {
	if len(s.Metrics()) != len(l.names) {
		return false
	}
	for i, m := range s.Metrics() {
		if m.Name != l.names[i] || m.Scale != l.scales[i] {
			return false
		}
	}
	return true
}

func (l *layout) numSeries() int { return l.numRows * len(l.names) }

// scaleOf is the scale of series id's column.
func (l *layout) scaleOf(id int32) float64 { return l.scales[l.colOrder[int(id)/l.numRows]] }

// rank orders the columns by metric name and the rows by label set.
func (l *layout) rank() {
	l.colOrder = make([]int32, len(l.names))
	for i := range l.colOrder {
		l.colOrder[i] = int32(i)
	}
	slices.SortFunc(l.colOrder, func(a, b int32) int { return compareStrings(l.names[a], l.names[b]) })

	rowSets := make([]labels.Labels, l.numRows)
	b := labels.NewScratchBuilder(len(l.labelNames))
	for row := range rowSets {
		rowSets[row] = l.rowLabels(&b, row, "")
	}
	l.rowOrder = make([]int32, l.numRows)
	for i := range l.rowOrder {
		l.rowOrder[i] = int32(i)
	}
	slices.SortFunc(l.rowOrder, func(a, b int32) int { return labels.Compare(rowSets[a], rowSets[b]) })
}

func (l *layout) index() {
	l.postings = make(map[string]map[string][]int32, len(l.labelNames))
	n := len(l.labelNames)
	for i, name := range l.labelNames {
		byValue := map[string][]int32{}
		for rank, row := range l.rowOrder {
			v := l.rowValues[int(row)*n+i]
			byValue[v] = append(byValue[v], int32(rank))
		}
		l.postings[name] = byValue
	}
}

// rowLabels builds the label set of a row, with the metric name when name is
// not empty. Empty values are left out, as Prometheus treats an empty label
// as an absent one.
func (l *layout) rowLabels(b *labels.ScratchBuilder, row int, name string) labels.Labels {
	b.Reset()
	if name != "" {
		b.Add(model.MetricNameLabel, name)
	}
	n := len(l.labelNames)
	for i, v := range l.rowValues[row*n : row*n+n] {
		if v != "" {
			b.Add(l.labelNames[i], v)
		}
	}
	b.Sort()
	return b.Labels()
}

// seriesLabels builds the label set of a series id.
func (l *layout) seriesLabels(b *labels.ScratchBuilder, id int32) labels.Labels {
	colRank, rowRank := int(id)/l.numRows, int(id)%l.numRows
	return l.rowLabels(b, int(l.rowOrder[rowRank]), l.names[l.colOrder[colRank]])
}

// absentBits marks a cell with no value in a block. It is a signalling NaN
// that no arithmetic produces, distinct from value.StaleNaN; NaNs from the
// source are stored as the normal NaN so they can never be taken for it.
const absentBits uint64 = 0x7ff00000000000a5

var absent = math.Float64frombits(absentBits)

// rowMap maps each row of l to its row in s, -1 where s lacks it. It is nil,
// with ok true, when s has exactly l's rows. ok is false unless s's rows are
// l's rows with some left out (switches missing from a poll) and at least
// half of them are there: a fabric that shrank for good gets a new layout
// rather than carry empty rows for the whole retention.
func (l *layout) rowMap(s *snapshot.Snapshot) (m []int32, ok bool) {
	n := s.NumRows()
	if n == l.numRows || 2*n < l.numRows || !slices.Equal(s.LabelNames(), l.labelNames) {
		return nil, n == l.numRows && l.sameAs(s)
	}
	m = make([]int32, l.numRows)
	nl := len(l.labelNames)
	// Both are in the snapshot's row order, so s's rows must appear in l's
	// in the same order.
	next := 0
	for row := range l.numRows {
		m[row] = -1
		if next < n && slices.Equal(s.RowLabels(next), l.rowValues[row*nl:row*nl+nl]) {
			m[row] = int32(next)
			next++
		}
	}
	return m, next == n
}

// gather copies a snapshot's values in id order, scaled as /metrics exports
// them. rows maps l's rows to s's (nil: the same rows).
func (l *layout) gather(s *snapshot.Snapshot, rows []int32) []float64 {
	values := make([]float64, l.numSeries())
	metrics := s.Metrics()
	for colRank, col := range l.colOrder {
		scale := metrics[col].Scale
		out := values[colRank*l.numRows : (colRank+1)*l.numRows]
		for rowRank, row := range l.rowOrder {
			if rows != nil {
				if row = rows[row]; row < 0 {
					out[rowRank] = absent
					continue
				}
			}
			out[rowRank] = scaled(s.Value(int(row), int(col)), scale)
		}
	}
	return values
}

func scaled(v snapshot.Value, scale float64) float64 {
	if !v.Present() {
		return absent
	}
	f := schema.Scaled(v.Float64(), scale)
	if math.IsNaN(f) {
		return math.NaN()
	}
	return f
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
