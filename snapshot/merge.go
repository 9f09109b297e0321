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
	columns, metrics, colMaps := mergeColumns(parts)
	rows := 0
	var newest time.Time
	for _, p := range parts {
		if !slices.Equal(p.labelNames, parts[0].labelNames) {
			return nil, fmt.Errorf("shards disagree on labels: %v and %v", parts[0].labelNames, p.labelNames)
		}
		rows += p.NumRows()
		if p.time.After(newest) {
			newest = p.time
		}
	}
	b := NewBuilder(parts[0].labelNames, columns, rows)
	for i, p := range parts {
		for row := range p.NumRows() {
			r := b.AddRow(p.RowLabels(row)...)
			for col, to := range colMaps[i] {
				if v := p.Value(row, col); v.Present() {
					b.Set(r, to, v)
				}
			}
		}
	}
	b.ShareIndex(prev)
	return b.Build(newest, metrics)
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
