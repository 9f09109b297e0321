package exporter

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Names of the gauges that describe the served view itself. They are
// derived from the same view as the data series, in the same scrape, so
// they always describe exactly what is served, and they are exported once
// per view however many parts it has.
const (
	snapshotTimestampName = schema.Namespace + "_snapshot_timestamp_seconds"
	snapshotSwitchesName  = schema.Namespace + "_snapshot_switches"
	snapshotSeriesName    = schema.Namespace + "_snapshot_series"
)

// family is one metric family: a data column of a snapshot part, or a
// view-level gauge without labels.
type family struct {
	name, help string
	typ        schema.Type
	col        int // snapshot column, or -1 for a view-level gauge
	scale      float64
	value      float64 // value of a view-level gauge
}

// dataFamilies lists the data columns of a snapshot part, sorted by name as
// Gather sorts them, so that the rendered part lists families in the same
// order.
func dataFamilies(snap *snapshot.Snapshot) []family {
	metrics := snap.Metrics()
	fams := make([]family, 0, len(metrics))
	for col, m := range metrics {
		scale := m.Scale
		if scale == 0 { // a hand-built Metric without scale means "unscaled"
			scale = 1
		}
		fams = append(fams, family{name: m.Name, help: m.Help, typ: m.Type, col: col, scale: scale})
	}
	slices.SortFunc(fams, func(a, b family) int { return strings.Compare(a.name, b.name) })
	return fams
}

// viewGauges are the view-level gauges, sorted by name: the newest part's
// time (how fresh the freshest data is), the distinct switches across the
// parts, and the data series of all parts.
func viewGauges(v *snapshot.View) []family {
	return []family{
		{
			name: snapshotSeriesName, typ: schema.Gauge, col: -1,
			help:  "Data series (present values) in the snapshot parts served on this endpoint, all parts together, cached from the last successful polls.",
			value: float64(v.Series()),
		},
		{
			name: snapshotSwitchesName, typ: schema.Gauge, col: -1,
			help:  "Distinct switches in the snapshot parts served on this endpoint (switch-level and per-port), cached from the last successful polls.",
			value: float64(v.Switches()),
		},
		{
			name: snapshotTimestampName, typ: schema.Gauge, col: -1,
			help:  "Source time of the newest snapshot part served on this endpoint, in seconds since the epoch (its newest row timestamp, or its poll time if the source gives none).",
			value: float64(v.Time().UnixNano()) / 1e9,
		},
	}
}

// claim removes from fams the families an earlier part of the view already
// exports (named in claimed) and adds the rest to claimed. The schema names
// switch-level and per-port metrics apart, so this only drops anything when
// a schema file gives a column one name in both kinds of source; the first
// part keeps the name, as the first source keeps a row both report.
func claim(claimed map[string]bool, fams []family) (kept []family, dropped []string) {
	kept = fams[:0:0]
	for _, f := range fams {
		if claimed[f.name] {
			dropped = append(dropped, f.name)
			continue
		}
		kept = append(kept, f)
	}
	for _, f := range kept {
		claimed[f.name] = true
	}
	if len(dropped) == 0 {
		return fams, nil
	}
	return kept, dropped
}

func valueType(t schema.Type) prometheus.ValueType {
	if t == schema.Counter {
		return prometheus.CounterValue
	}
	return prometheus.GaugeValue
}

// Collector exports the current view of a store as const metrics. It is
// the reference for what /metrics serves: the exporter renders the same
// families straight to bytes, and tests hold the two equal.
type Collector struct {
	store snapshot.Loader
}

// NewCollector returns a collector over the store's current view.
func NewCollector(store snapshot.Loader) *Collector { return &Collector{store: store} }

// Describe sends nothing: the metrics depend on the columns the sources
// send, so the collector is unchecked.
func (c *Collector) Describe(chan<- *prometheus.Desc) {}

// Collect loads the view once and sends the view-level gauges and every
// present value of every part. A row whose labels cannot be exported is
// reported as an invalid metric and skipped, never failing the other series.
// Empty label values are left out, as Prometheus treats them as absent.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	view := c.store.Load()
	if view == nil || len(view.Parts()) == 0 {
		return
	}
	collectViewGauges(ch, view)
	claimed := map[string]bool{}
	for _, snap := range view.Parts() {
		fams, _ := claim(claimed, dataFamilies(snap))
		collectPart(ch, snap, fams)
	}
}

func collectViewGauges(ch chan<- prometheus.Metric, view *snapshot.View) {
	for _, f := range viewGauges(view) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(f.name, f.help, nil, nil), prometheus.GaugeValue, f.value)
	}
}

// viewGaugeCollector exports the view-level gauges of a store's current
// view alone, for SelfGatherer.
type viewGaugeCollector struct{ store snapshot.Loader }

func (viewGaugeCollector) Describe(chan<- *prometheus.Desc) {}

func (c viewGaugeCollector) Collect(ch chan<- prometheus.Metric) {
	if view := c.store.Load(); view != nil && len(view.Parts()) > 0 {
		collectViewGauges(ch, view)
	}
}

func collectPart(ch chan<- prometheus.Metric, snap *snapshot.Snapshot, fams []family) {
	labelNames := snap.LabelNames()
	var names, values []string
	for _, f := range fams {
		full := prometheus.NewDesc(f.name, f.help, labelNames, nil)
		partial := map[uint64]*prometheus.Desc{} // by the set of non-empty labels
		vt := valueType(f.typ)
		for row := range snap.NumRows() {
			v := snap.Value(row, f.col)
			if !v.Present() {
				continue
			}
			desc, labels := full, snap.RowLabels(row)
			if slices.Contains(labels, "") {
				var set uint64
				names, values = names[:0], values[:0]
				for i, l := range labels {
					if l != "" {
						set |= 1 << i
						names, values = append(names, labelNames[i]), append(values, l)
					}
				}
				if desc = partial[set]; desc == nil || len(labels) > 64 {
					desc = prometheus.NewDesc(f.name, f.help, slices.Clone(names), nil)
					partial[set] = desc // a set of more than 64 labels is not cached
				}
				labels = values
			}
			m, err := prometheus.NewConstMetric(desc, vt, schema.Scaled(v.Float64(), f.scale), labels...)
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err)
			}
			ch <- m
		}
	}
}
