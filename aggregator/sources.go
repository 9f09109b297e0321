package aggregator

import (
	"fmt"
	"slices"
	"time"

	"github.com/fabrictelemetry/aggregator/config"
	"github.com/fabrictelemetry/aggregator/history"
	"github.com/fabrictelemetry/aggregator/ingest"
	"github.com/fabrictelemetry/aggregator/kafkalog"
	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// source is one configured source: its poller, its own history (so that a
// failing source's samples keep their time rather than being re-stamped
// when another source publishes) and its last good part of the view.
type source struct {
	cfg     config.Source
	poller  *ingest.Poller
	history *history.History
	// labelNames and labelValues are the configured extra labels, sorted
	// by name.
	labelNames, labelValues []string
	// publisher writes the source's accepted polls to the poll log
	// (--kafka.publish); nil otherwise.
	publisher *kafkalog.Publisher
	// feed is the poll log a source learnt from the log comes from; nil
	// for an HTTP source, which has a poller instead.
	feed *feed
	// partitions are the source's histories on a partitioned replica, one
	// per partition it holds, instead of history; nil otherwise.
	partitions *partitionHistories

	// Written by this source's poller goroutine only.
	last, lastLabelled *snapshot.Snapshot
	// part is what this source contributes to the view; guarded by
	// Aggregator.mu.
	part *snapshot.Snapshot
}

func (a *Aggregator) newSource(sc config.Source) (*source, error) {
	format, err := ingest.ParseFormat(sc.Format)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", sc.Name, err)
	}
	src := &source{cfg: sc, history: a.newHistory(sc.Name)}
	for name := range sc.Labels {
		src.labelNames = append(src.labelNames, name)
	}
	slices.Sort(src.labelNames)
	for _, name := range src.labelNames {
		src.labelValues = append(src.labelValues, sc.Labels[name])
	}
	client, err := newSourceClient(sc)
	if err != nil {
		return nil, err
	}
	src.poller = &ingest.Poller{
		Source:   sc.Name,
		Fetcher:  &ingest.Fetcher{URL: sc.URL, MaxBytes: int64(sc.MaxBytes), Client: client},
		Parser:   ingest.NewFormatParser(a.cfg.Schema, format),
		Shards:   sc.Shards,
		Interval: time.Duration(sc.Interval),
		Timeout:  time.Duration(sc.Timeout),
		Publish:  func(s *snapshot.Snapshot) { a.publish(src, s) },
		Observe:  a.observe,
		Logger:   a.cfg.Logger.With("component", "ingest", "source_name", sc.Name),
	}
	src.poller.Parser.Limits = ingest.Limits{Samples: sc.SampleLimit, Columns: sc.ColumnLimit, LabelValueLength: sc.LabelValueLengthLimit}
	src.poller.MaxClockSkew = time.Duration(sc.MaxClockSkew)
	return src, nil
}

// histories are the source's PromQL histories: its own, or on a
// partitioned replica one per partition it holds.
func (src *source) histories() []*history.History {
	if src.partitions != nil {
		return src.partitions.all()
	}
	return []*history.History{src.history}
}

// newHistory is a source's PromQL history.
func (a *Aggregator) newHistory(name string) *history.History {
	return history.New(a.cfg.Query.Retention).
		WithMaxSeries(a.cfg.Query.MaxHistorySeries).
		WithLogger(a.cfg.Logger.With("component", "history", "source_name", name))
}

// publish runs in src's poller after it accepted a snapshot: the source's
// labels are added, a new view merged from every source's last good part is
// swapped in, the source's history is appended, the snapshot as served is
// queued for the poll log, and written to its state file.
func (a *Aggregator) publish(src *source, s *snapshot.Snapshot) {
	if !a.publishPart(src, s) {
		return
	}
	if src.publisher != nil {
		src.publisher.Publish(src.lastLabelled) // never blocks
	}
	a.persist(src, s)
}

// publishPart makes s the source's part of the view and reports whether it did.
func (a *Aggregator) publishPart(src *source, s *snapshot.Snapshot) bool {
	labelled, err := s.WithLabels(src.labelNames, src.labelValues, src.last, src.lastLabelled)
	if err != nil {
		// The parser never emits a configured label (the config refuses
		// the reserved ones), so this is a column named like a label.
		a.cfg.Logger.Error("Snapshot not published", "source_name", src.cfg.Name, "err", err)
		return false
	}
	src.last, src.lastLabelled = s, labelled

	a.mu.Lock()
	src.part = labelled
	view := a.mergeView()
	a.store.PublishView(view)
	for _, f := range a.onPublish {
		f(view)
	}
	a.mu.Unlock()
	// After the swap: encoding old history blocks takes a while at fabric
	// scale, and the REST and /metrics readers need not wait for it. (A
	// partitioned source's histories are fed per partition instead.)
	if src.history != nil {
		src.history.Append(labelled)
	}
	return true
}

// mergeView joins the sources' parts into one view: the switch-level parts
// into one snapshot, the per-port parts into another. With one source this
// is the source's own snapshot, without a copy. Called with a.mu held.
func (a *Aggregator) mergeView() *snapshot.View {
	var groups [2][]*snapshot.Snapshot
	for _, src := range *a.served.Load() {
		if src.part == nil {
			continue
		}
		kind := 0
		if snapshot.Subsystem(src.part.LabelNames()) == schema.PortSubsystem {
			kind = 1
		}
		groups[kind] = append(groups[kind], src.part)
	}
	for kind, parts := range groups {
		if slices.Equal(parts, a.mergedFrom[kind]) {
			continue // the other kind's poll: this merge is still right, and its caches with it
		}
		a.mergedFrom[kind] = parts
		if len(parts) == 0 {
			a.merged[kind] = nil
			continue
		}
		merged, dropped, err := snapshot.MergeSources(parts, a.merged[kind])
		if err != nil {
			// Cannot happen for parts that each built: keep the last merge.
			a.cfg.Logger.Error("Merging sources failed", "err", err)
			continue
		}
		if dropped != a.dropped[kind] {
			a.dropped[kind] = dropped
			a.cfg.Logger.Warn("Rows reported by several sources; the first source in the configuration keeps them",
				"rows", dropped, "per_port", kind == 1)
		}
		a.merged[kind] = merged
	}
	return snapshot.NewView(a.merged[0], a.merged[1])
}
