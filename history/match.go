package history

import (
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// match returns the ids of the series of l that match every matcher, in id
// order. Matchers on __name__ pick columns and matchers on row labels pick
// rows through the postings, so the cost is in the matched series and the
// distinct values of the matched labels, never in all series.
func (l *layout) match(ms []*labels.Matcher) []int32 {
	cols := l.matchColumns(ms)
	if len(cols) == 0 {
		return nil
	}
	rows, all := l.matchRows(ms)
	if !all && len(rows) == 0 {
		return nil
	}
	n := l.numRows
	if all {
		ids := make([]int32, 0, len(cols)*n)
		for _, c := range cols {
			for r := range n {
				ids = append(ids, int32(int(c)*n+r))
			}
		}
		return ids
	}
	ids := make([]int32, 0, len(cols)*len(rows))
	for _, c := range cols {
		for _, r := range rows {
			ids = append(ids, int32(int(c)*n)+r)
		}
	}
	return ids
}

// matchColumns returns the ranks of the columns whose metric name matches.
func (l *layout) matchColumns(ms []*labels.Matcher) []int32 {
	var cols []int32
next:
	for rank, col := range l.colOrder {
		for _, m := range ms {
			if m.Name == model.MetricNameLabel && !m.Matches(l.names[col]) {
				continue next
			}
		}
		cols = append(cols, int32(rank))
	}
	return cols
}

// matchRows returns the sorted ranks of the rows that match every row-label
// matcher, or all true when no matcher restricts the rows.
func (l *layout) matchRows(ms []*labels.Matcher) (rows []int32, all bool) {
	all = true
	for _, m := range ms {
		if m.Name == model.MetricNameLabel {
			continue
		}
		byValue, ok := l.postings[m.Name]
		if !ok {
			// Not a label of this layout: every row has it empty.
			if m.Matches("") {
				continue
			}
			return nil, false
		}
		set := l.rowsWith(m, byValue)
		if all {
			rows, all = set, false
		} else {
			rows = intersect(rows, set)
		}
		if len(rows) == 0 {
			return nil, false
		}
	}
	return rows, all
}

// rowsWith returns the sorted row ranks whose value of m's label matches m.
func (l *layout) rowsWith(m *labels.Matcher, byValue map[string][]int32) []int32 {
	if m.Type == labels.MatchEqual {
		return byValue[m.Value]
	}
	var lists [][]int32
	total := 0
	for v, p := range byValue {
		if m.Matches(v) {
			lists = append(lists, p)
			total += len(p)
		}
	}
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	if total*8 < l.numRows {
		out := make([]int32, 0, total)
		for _, p := range lists {
			out = append(out, p...)
		}
		slices.Sort(out)
		return out
	}
	// Many values match (a broad regex): mark, then read out in order.
	marked := make([]bool, l.numRows)
	for _, p := range lists {
		for _, r := range p {
			marked[r] = true
		}
	}
	out := make([]int32, 0, total)
	for r, ok := range marked {
		if ok {
			out = append(out, int32(r))
		}
	}
	return out
}

// intersect returns the values in both sorted lists; it allocates a new list,
// since the inputs may be postings that must not change.
func intersect(a, b []int32) []int32 {
	out := make([]int32, 0, min(len(a), len(b)))
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// scan is match without the index: it builds every series' labels and tests
// the matchers, as a naive Queryable would. It is kept for the benchmark that
// shows what the index is worth.
func (l *layout) scan(ms []*labels.Matcher) []int32 {
	var ids []int32
	b := labels.NewScratchBuilder(len(l.labelNames) + 1)
	for id := range l.numSeries() {
		lset := l.seriesLabels(&b, int32(id))
		if matchesAll(lset, ms) {
			ids = append(ids, int32(id))
		}
	}
	return ids
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}
