package snapshot

import (
	"fmt"
	"slices"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
)

// Merge joins the snapshots of one source's shards into one: the rows of
// all, the union of their columns, the newest time. The shards must share
// their identity labels; a row in two shards is a duplicate. prev (may be
// nil) is the previous merge, whose index is shared if the rows are the same.
func Merge(parts []*Snapshot, prev *Snapshot) (*Snapshot, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	for _, p := range parts {
		if !slices.Equal(p.labelNames, parts[0].labelNames) {
			return nil, fmt.Errorf("shards disagree on labels: %v and %v", parts[0].labelNames, p.labelNames)
		}
	}
	b := mergeBuilder(parts)
	b.ShareIndex(prev)
	return b.Build(newestTime(parts), b.metrics)
}

// MergeSources joins the snapshots of several sources of one kind (all
// switch-level, or all per-port) into the one snapshot readers see. Unlike
// Merge it takes the union of the label names (a row without a label has
// it empty, which Prometheus reads as absent), and a row that an earlier
// part already has is dropped rather than failing the merge: the first
// source in configuration order owns it. dropped says how many rows went.
func MergeSources(parts []*Snapshot, prev *Snapshot) (merged *Snapshot, dropped int, err error) {
	if len(parts) == 1 {
		return parts[0], 0, nil
	}
	b := mergeBuilder(parts)
	b.ShareIndex(prev)
	b.sortRows()
	dropped = b.dropDuplicates()
	merged, err = b.Build(newestTime(parts), b.metrics)
	return merged, dropped, err
}

// mergeBuilder copies the parts' rows into one builder whose labels and
// columns are the unions of theirs, in first-seen order.
func mergeBuilder(parts []*Snapshot) *mergingBuilder {
	labelNames, labelMaps := unionLabels(parts)
	columns, metrics, colMaps := mergeColumns(parts)
	rows := 0
	for _, p := range parts {
		rows += p.NumRows()
	}
	b := &mergingBuilder{Builder: NewBuilder(labelNames, columns, rows), metrics: metrics}
	rowLabels := make([]string, len(labelNames))
	for i, p := range parts {
		for row := range p.NumRows() {
			clear(rowLabels)
			for l, v := range p.RowLabels(row) {
				rowLabels[labelMaps[i][l]] = v
			}
			r := b.AddRow(rowLabels...)
			for col, to := range colMaps[i] {
				if v := p.Value(row, col); v.Present() {
					b.Set(r, to, v)
				}
			}
		}
	}
	return b
}

type mergingBuilder struct {
	*Builder
	metrics []schema.Metric
}

func newestTime(parts []*Snapshot) time.Time {
	var newest time.Time
	for _, p := range parts {
		if p.time.After(newest) {
			newest = p.time
		}
	}
	return newest
}

// unionLabels returns the union of the parts' label names (switch_id stays
// first, since every part starts with it) and where each part's went.
func unionLabels(parts []*Snapshot) ([]string, [][]int) {
	var names []string
	maps := make([][]int, len(parts))
	for i, p := range parts {
		maps[i] = make([]int, len(p.labelNames))
		for l, name := range p.labelNames {
			at := slices.Index(names, name)
			if at < 0 {
				at = len(names)
				names = append(names, name)
			}
			maps[i][l] = at
		}
	}
	return names, maps
}

// mergeColumns returns the union of the parts' columns in first-seen order,
// their metric descriptions, and for each part where its columns went.
func mergeColumns(parts []*Snapshot) ([]string, []schema.Metric, [][]int) {
	index := map[string]int{}
	var columns []string
	var metrics []schema.Metric
	colMaps := make([][]int, len(parts))
	for i, p := range parts {
		colMaps[i] = make([]int, len(p.columns))
		for col, name := range p.columns {
			to, ok := index[name]
			if !ok {
				to = len(columns)
				index[name] = to
				columns = append(columns, name)
				metrics = append(metrics, p.metrics[col])
			}
			colMaps[i][col] = to
		}
	}
	return columns, metrics, colMaps
}

// WithLabels returns s with constant labels added to every row (a source's
// extra labels from the configuration, such as fabric="east"). The values
// are shared with s, not copied. If s has the same rows as prevSource, the
// labels of prev (the result of the previous call) are shared too, so
// readers that cache per-row work see a steady fabric as unchanged.
func (s *Snapshot) WithLabels(names, values []string, prevSource, prev *Snapshot) (*Snapshot, error) {
	if len(names) != len(values) {
		return nil, fmt.Errorf("%d label names for %d values", len(names), len(values))
	}
	if len(names) == 0 {
		return s, nil // the common source without extra labels: nothing to copy
	}
	for _, name := range names {
		if slices.Contains(s.labelNames, name) {
			return nil, fmt.Errorf("label %q is already a row label of the source", name)
		}
	}
	out := *s
	if prev != nil && s.SameRows(prevSource) && len(prev.labelNames) == len(s.labelNames)+len(names) {
		out.labelNames, out.labels = prev.labelNames, prev.labels
		return &out, nil
	}
	out.labelNames = append(slices.Clip(s.labelNames), names...)
	out.labels = make([]string, 0, s.NumRows()*len(out.labelNames))
	for row := range s.NumRows() {
		out.labels = append(out.labels, s.RowLabels(row)...)
		out.labels = append(out.labels, values...)
	}
	return &out, nil
}
