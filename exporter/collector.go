package exporter

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Names of the gauges that describe the served snapshot itself. They are
// derived from the same snapshot as the data series, in the same scrape, so
// they always describe exactly what is served.
const (
	snapshotTimestampName = schema.Namespace + "_snapshot_timestamp_seconds"
	snapshotSwitchesName  = schema.Namespace + "_snapshot_switches"
	snapshotSeriesName    = schema.Namespace + "_snapshot_series"
)

// family is one metric family of a snapshot: a data column, or a
// snapshot-level gauge without labels.
type family struct {
	name, help string
	typ        schema.Type
	col        int // snapshot column, or -1 for a snapshot-level gauge
	scale      float64
	value      float64 // value of a snapshot-level gauge
}

// families lists what a snapshot exports, sorted by name as Gather sorts
// them, so that the rendered exposition lists families in the same order.
func families(snap *snapshot.Snapshot) []family {
	metrics := snap.Metrics()
	fams := make([]family, 0, len(metrics)+3)
	for col, m := range metrics {
		scale := m.Scale
		if scale == 0 { // a hand-built Metric without scale means "unscaled"
			scale = 1
		}
		fams = append(fams, family{name: m.Name, help: m.Help, typ: m.Type, col: col, scale: scale})
	}
	fams = append(fams,
		family{
			name: snapshotTimestampName, typ: schema.Gauge, col: -1,
			help:  "Source time of the snapshot served on this endpoint, in seconds since the epoch (newest row timestamp, or the poll time if the source gives none).",
			value: float64(snap.Time().UnixNano()) / 1e9,
		},
		family{
			name: snapshotSwitchesName, typ: schema.Gauge, col: -1,
			help:  "Switches in the snapshot served on this endpoint, cached from the last successful poll.",
			value: float64(len(snap.Switches())),
		},
		family{
			name: snapshotSeriesName, typ: schema.Gauge, col: -1,
			help:  "Data series (present values) in the snapshot served on this endpoint, cached from the last successful poll.",
			value: float64(snap.Series()),
		},
	)
	slices.SortFunc(fams, func(a, b family) int { return strings.Compare(a.name, b.name) })
	return fams
}

func valueType(t schema.Type) prometheus.ValueType {
	if t == schema.Counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}

// Collector exports the current snapshot of a store as const metrics. It is
// the reference for what /metrics serves: the exporter renders the same
// families straight to bytes, and a test holds the two equal.
type Collector struct {
	store *snapshot.Store
}

// NewCollector returns a collector over the store's current snapshot.
func NewCollector(store *snapshot.Store) *Collector { return &Collector{store: store} }

// Describe sends nothing: the metrics depend on the columns the source sends,
// so the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect loads the snapshot once and sends every present value of it. A row
// whose labels cannot be exported is reported as an invalid metric and
// skipped, never failing the other series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	snap := c.store.Load()
	if snap == nil {
		return
	}
	labelNames := snap.LabelNames()
	for _, f := range families(snap) {
		if f.col < 0 {
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(f.name, f.help, nil, nil), prometheus.GaugeValue, f.value)
			continue
		}
		desc := prometheus.NewDesc(f.name, f.help, labelNames, nil)
		vt := valueType(f.typ)
		for row := range snap.NumRows() {
			v := snap.Value(row, f.col)
			if !v.Present() {
				continue
			}
			m, err := prometheus.NewConstMetric(desc, vt, v.Float64()*f.scale, snap.RowLabels(row)...)
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- m
		}
	}
}
