package history

import (
	"context"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// Queryable returns a storage.Queryable over the history: each Querier reads
// the view current when it is made, so one query sees one history.
func (h *History) Queryable() storage.Queryable { return queryable{h: h} }

type queryable struct {
	h *History
	// fullScan matches every series' labels instead of using the index; it
	// exists for the benchmark that measures the index.
	fullScan bool
}

func (q queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{sel: newSelection(q.h.Load().span(mint, maxt)), fullScan: q.fullScan}, nil
}

// selection is the blocks of one querier's time range and their distinct
// layouts: one in a steady fabric, more when rows or columns changed.
type selection struct {
	blocks   []*block
	layouts  []*layout
	layoutOf []int // per block, index into layouts
}

func newSelection(blocks []*block) *selection {
	s := &selection{blocks: blocks, layoutOf: make([]int, len(blocks))}
	for i, b := range blocks {
		j := slices.Index(s.layouts, b.lay)
		if j < 0 {
			j = len(s.layouts)
			s.layouts = append(s.layouts, b.lay)
		}
		s.layoutOf[i] = j
	}
	return s
}

// seriesRef is one selected series: its labels and its id in each layout of
// the selection (-1 where the layout does not have it).
// It is the storage.Series the series set hands out.
type seriesRef struct {
	sel  *selection
	lset labels.Labels
	ids  []int32
}

// cell returns the series' sample in block i, if it has one. dec reads
// encoded blocks; it is fastest when one series is read forward in time.
func (s *selection) cell(ids []int32, i int, dec *decoder) (float64, bool) {
	id := ids[s.layoutOf[i]]
	if id < 0 {
		return 0, false
	}
	b := s.blocks[i]
	var v float64
	if b.values != nil {
		v = b.values[id]
	} else {
		v = dec.at(b.enc, b.lay, id, b.idx)
	}
	return v, !isAbsent(v)
}

func (s *selection) hasSamples(ids []int32) bool {
	var dec decoder
	for i := range s.blocks {
		if _, ok := s.cell(ids, i, &dec); ok {
			return true
		}
	}
	return false
}

type querier struct {
	sel      *selection
	fullScan bool
}

func (q *querier) Close() error { return nil }

// Select returns the matching series. Label-only lookups (hints nil or
// Func "series") leave out series without a sample in the range; the
// engine does not need that filter, since a series without samples yields
// nothing.
func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	labelOnly := hints == nil || hints.Func == "series"
	if len(q.sel.layouts) == 1 && (!sortSeries || q.labelOrdered()) {
		// The steady state: the ids come in label order, and each series'
		// labels are built when the reader gets to it, so a selector that
		// matches millions of series costs four bytes each until read, and
		// the engine's series limit stops the reading early.
		return &lazySet{sel: q.sel, lay: q.sel.layouts[0], ids: q.matchLayout(q.sel.layouts[0], ms),
			labelOnly: labelOnly, i: -1, b: labels.NewScratchBuilder(len(q.sel.layouts[0].labelNames) + 1)}
	}
	refs := q.refs(ms)
	if labelOnly {
		refs = slices.DeleteFunc(refs, func(r seriesRef) bool { return !q.sel.hasSamples(r.ids) })
	}
	if sortSeries && !q.labelOrdered() {
		slices.SortFunc(refs, func(a, b seriesRef) int { return labels.Compare(a.lset, b.lset) })
	}
	return &seriesSet{sel: q.sel, refs: refs, i: -1}
}

func (q *querier) labelOrdered() bool {
	return len(q.sel.layouts) != 1 || q.sel.layouts[0].labelOrdered
}

// refs matches each layout and merges the layouts' series by labels.
func (q *querier) refs(ms []*labels.Matcher) []seriesRef {
	switch len(q.sel.layouts) {
	case 0:
		return nil
	case 1:
		return q.refsOne(ms)
	}
	return q.refsMerged(ms)
}

// refsOne is the steady state: one layout, whose id order is label order.
// It allocates the ids of all series at once.
func (q *querier) refsOne(ms []*labels.Matcher) []seriesRef {
	lay := q.sel.layouts[0]
	ids := q.matchLayout(lay, ms)
	refs := make([]seriesRef, len(ids))
	b := labels.NewScratchBuilder(len(lay.labelNames) + 1)
	for i := range ids {
		refs[i] = seriesRef{sel: q.sel, lset: lay.seriesLabels(&b, ids[i]), ids: ids[i : i+1 : i+1]}
	}
	return refs
}

// refsMerged matches each layout, then merges series with equal labels.
func (q *querier) refsMerged(ms []*labels.Matcher) []seriesRef {
	nl := len(q.sel.layouts)
	b := labels.NewScratchBuilder(8)
	type entry struct {
		lset   labels.Labels
		layout int
		id     int32
	}
	var entries []entry
	for li, lay := range q.sel.layouts {
		for _, id := range q.matchLayout(lay, ms) {
			entries = append(entries, entry{lay.seriesLabels(&b, id), li, id})
		}
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return labels.Compare(a.lset, b.lset) })
	var refs []seriesRef
	for i := 0; i < len(entries); {
		ids := make([]int32, nl)
		for j := range ids {
			ids[j] = -1
		}
		lset := entries[i].lset
		for ; i < len(entries) && labels.Equal(entries[i].lset, lset); i++ {
			ids[entries[i].layout] = entries[i].id
		}
		refs = append(refs, seriesRef{sel: q.sel, lset: lset, ids: ids})
	}
	return refs
}

func (q *querier) matchLayout(lay *layout, ms []*labels.Matcher) []int32 {
	if q.fullScan {
		return lay.scan(ms)
	}
	return lay.match(ms)
}

// LabelValues returns the values of a label among the series with samples
// in the range: from the index when there are no matchers, else from the
// matching series.
func (q *querier) LabelValues(_ context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	set := map[string]struct{}{}
	if len(ms) == 0 {
		for li := range q.sel.layouts {
			q.eachValue(li, name, func(v string) bool { set[v] = struct{}{}; return true })
		}
	} else {
		for _, r := range q.refs(ms) {
			if v := r.lset.Get(name); v != "" && q.sel.hasSamples(r.ids) {
				set[v] = struct{}{}
			}
		}
	}
	return limited(sortedKeys(set), hints), nil, nil
}

// LabelNames returns the names of the labels that have a value in a series
// with samples in the range.
func (q *querier) LabelNames(_ context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	set := map[string]struct{}{}
	if len(ms) == 0 {
		for li, lay := range q.sel.layouts {
			for _, name := range append([]string{model.MetricNameLabel}, lay.labelNames...) {
				q.eachValue(li, name, func(string) bool { set[name] = struct{}{}; return false })
			}
		}
	} else {
		for _, r := range q.refs(ms) {
			if q.sel.hasSamples(r.ids) {
				r.lset.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
			}
		}
	}
	return limited(sortedKeys(set), hints), nil, nil
}

// eachValue calls f with each non-empty value of a label in layout li that
// some series with a sample in the selection has, until f returns false.
func (q *querier) eachValue(li int, name string, f func(string) bool) {
	lay := q.sel.layouts[li]
	if name == model.MetricNameLabel {
		for rank, col := range lay.colOrder {
			if q.sel.anySample(li, []int32{int32(rank)}, nil) && !f(lay.names[col]) {
				return
			}
		}
		return
	}
	for v, rows := range lay.postings[name] {
		if v != "" && q.sel.anySample(li, nil, rows) && !f(v) {
			return
		}
	}
}

// anySample reports whether a block of layout li has a value in one of the
// given column ranks (nil: any) and row ranks (nil: any). A steady fabric
// answers at the first cell looked at.
func (s *selection) anySample(li int, cols, rows []int32) bool {
	lay := s.layouts[li]
	var dec decoder
	for i := 0; i < len(s.blocks); i++ {
		if s.layoutOf[i] != li {
			continue
		}
		b := s.blocks[i]
		if b.values != nil {
			if lay.anySeries(cols, rows, func(id int32) bool { return !isAbsent(b.values[id]) }) {
				return true
			}
			continue
		}
		// The blocks of b's run in the selection, i to j-1, at once.
		j := i + 1
		for j < len(s.blocks) && s.blocks[j].enc == b.enc {
			j++
		}
		lo, hi := b.idx, s.blocks[j-1].idx
		if lay.anySeries(cols, rows, func(id int32) bool { return dec.anyIn(b.enc, lay, id, lo, hi) }) {
			return true
		}
		i = j - 1
	}
	return false
}

// anySeries reports whether f is true for a series in the given column
// ranks (nil: all) and row ranks (nil: all), calling it until it is.
func (l *layout) anySeries(cols, rows []int32, f func(id int32) bool) bool {
	for c := range len(l.names) {
		if cols != nil && !slices.Contains(cols, int32(c)) {
			continue
		}
		base := int32(c * l.numRows)
		if rows == nil {
			for r := range int32(l.numRows) {
				if f(base + r) {
					return true
				}
			}
			continue
		}
		for _, r := range rows {
			if f(base + r) {
				return true
			}
		}
	}
	return false
}

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func limited(values []string, hints *storage.LabelHints) []string {
	if hints != nil && hints.Limit > 0 && len(values) > hints.Limit {
		return values[:hints.Limit]
	}
	return values
}
