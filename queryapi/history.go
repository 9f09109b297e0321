package queryapi

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// DefaultRetention is how long snapshots are kept when no retention is given.
const DefaultRetention = time.Hour

// History keeps the snapshots of the last retention period as blocks that
// queries read. One writer calls Append; any number of readers call Load and
// keep a consistent view for as long as they like, without locks: Append
// never changes a published view, it publishes a new one (copy-on-write of a
// small slice of block pointers).
type History struct {
	retention int64 // milliseconds
	view      atomic.Pointer[View]
	ignored   atomic.Uint64
	// last is the newest appended snapshot, kept by the writer only, so
	// that a snapshot sharing its rows is recognised without a comparison.
	last     *snapshot.Snapshot
	lastRows []int32 // last's row map into its layout
}

// View is the history as of one Append: blocks in increasing time order.
type View struct {
	blocks []*block
	// metrics describes the newest snapshot's columns, for metadata of
	// columns the schema table does not know.
	metrics []schema.Metric
}

// block is one snapshot's samples: a value per series of its layout, in id
// order. The layout is shared with neighbouring blocks, so a steady fabric
// stores eight bytes per sample and nothing else.
type block struct {
	t      int64 // milliseconds since the epoch
	lay    *layout
	values []float64
}

// NewHistory returns an empty history that keeps snapshots for retention
// (DefaultRetention if not positive), measured back from the newest
// snapshot's time.
func NewHistory(retention time.Duration) *History {
	if retention <= 0 {
		retention = DefaultRetention
	}
	h := &History{retention: retention.Milliseconds()}
	h.view.Store(&View{})
	return h
}

// Append adds a snapshot, stamped with its source time, and drops the
// blocks older than the retention before it. A snapshot with the time of the
// newest block replaces it (a source that did not move on); an older one is
// ignored, since a series' samples must be in time order. Append must only
// be called by one goroutine.
func (h *History) Append(s *snapshot.Snapshot) {
	old := h.view.Load()
	t := s.Time().UnixMilli()
	keep := old.blocks
	if n := len(keep); n > 0 {
		switch last := keep[n-1]; {
		case t < last.t:
			h.ignored.Add(1)
			return
		case t == last.t:
			keep = keep[:n-1]
		}
	}
	lay, rows := h.layoutFor(s, old)
	h.last, h.lastRows = s, rows
	first := sort.Search(len(keep), func(i int) bool { return keep[i].t >= t-h.retention })
	blocks := make([]*block, 0, len(keep)-first+1)
	blocks = append(blocks, keep[first:]...)
	blocks = append(blocks, &block{t: t, lay: lay, values: lay.gather(s, rows)})
	h.view.Store(&View{blocks: blocks, metrics: s.Metrics()})
}

// layoutFor reuses the newest block's layout when s has its columns and its
// rows, or its rows less some switches missing from this poll; rows then
// maps the layout's rows to s's. This saves building a series table and
// index per poll, and keeps one layout through drop-outs, so queries take the
// single-layout path. The parser shares row storage between snapshots with
// the same rows, which makes the common case one pointer comparison.
func (h *History) layoutFor(s *snapshot.Snapshot, v *View) (lay *layout, rows []int32) {
	n := len(v.blocks)
	if n == 0 {
		return newLayout(s), nil
	}
	lay = v.blocks[n-1].lay
	if !lay.sameNames(s) {
		return newLayout(s), nil
	}
	if s.SameRows(h.last) {
		return lay, h.lastRows
	}
	if rows, ok := lay.rowMap(s); ok {
		return lay, rows
	}
	return newLayout(s), nil
}

// Load returns the current view. It never changes; later appends publish
// new views.
func (h *History) Load() *View { return h.view.Load() }

// Ignored counts snapshots dropped for being older than the newest block.
func (h *History) Ignored() uint64 { return h.ignored.Load() }

// Len is the number of snapshots in the view.
func (v *View) Len() int { return len(v.blocks) }

// Samples is the number of stored values, absent cells included.
func (v *View) Samples() int {
	n := 0
	for _, b := range v.blocks {
		n += len(b.values)
	}
	return n
}

// Times returns the time of each snapshot in the view, oldest first.
func (v *View) Times() []time.Time {
	ts := make([]time.Time, len(v.blocks))
	for i, b := range v.blocks {
		ts[i] = time.UnixMilli(b.t).UTC()
	}
	return ts
}

// span returns the blocks whose time is in [mint, maxt].
func (v *View) span(mint, maxt int64) []*block {
	lo := sort.Search(len(v.blocks), func(i int) bool { return v.blocks[i].t >= mint })
	hi := sort.Search(len(v.blocks), func(i int) bool { return v.blocks[i].t > maxt })
	if lo >= hi {
		return nil
	}
	return v.blocks[lo:hi]
}
