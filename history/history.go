package history

import (
	"encoding/binary"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/fabrictelemetry/aggregator/schema"
	"github.com/fabrictelemetry/aggregator/snapshot"
)

// DefaultRetention is how long snapshots are kept when no retention is given.
const DefaultRetention = time.Hour

// DefaultMaxSeries is the series budget the aggregator gives each source's
// history unless told otherwise (see WithMaxSeries). The 2,000 × 64-port
// fabric holds 1.8M series in a layout (UFM's 14 columns; 2.2M in the
// per-port matrix's 17), and a steady fabric keeps one layout for the whole
// retention, so the budget holds an hour of it through four or five changes
// of its rows. A source whose rows change on every poll is held to about
// 130 MB: the budget at 13 bytes a series (a plain block and its layout,
// BenchmarkHistoryChurn on that fabric renamed every poll), where an hour
// of such churn at 10s would hold 360 layouts, some 8 GB.
const DefaultMaxSeries = 10_000_000

// History keeps the snapshots of the last retention period as blocks that
// queries read. One writer calls Append; any number of readers call Load and
// keep a consistent view for as long as they like, without locks: Append
// never changes a published view, it publishes a new one (copy-on-write of a
// small slice of block pointers).
//
// The newest blocks (the head) hold plain values, eight bytes a sample. As
// blocks age, Append encodes runs of them that share a layout, a few series
// per call (see compress), and when a run is done publishes blocks that read
// it instead: the same samples in about a quarter of the memory on the
// simulator's data (see codec.go), while readers still load one pointer.
//
// The history always ends with the snapshot it was last given, as REST
// serves it: a snapshot older than the newest block rewinds the history to
// it (see Append), and a series budget bounds what a source whose rows keep
// changing can cost (see WithMaxSeries). What either drops is counted by
// reason (Dropped) and logged.
type History struct {
	retention int64 // milliseconds
	maxSeries int   // 0: no budget
	view      atomic.Pointer[View]
	// last is the newest appended snapshot, kept by the writer only, so
	// that a snapshot sharing its rows is recognised without a comparison.
	last     *snapshot.Snapshot
	lastLay  *layout // the layout last was appended with
	lastRows []int32 // last's row map into lastLay

	drops drops

	// Compression, the writer's own state: blocks before cutFrom are
	// encoded or stay plain for good; pending is the run being encoded.
	comp    Compression
	cutFrom int64
	pending *pendingRun
	// cellBytes is the last run's size per cell, to size the next.
	cellBytes float64

	// disk keeps the sealed runs, when set by Persist.
	disk atomic.Pointer[Disk]
}

// Compression says when and how fast a history encodes its blocks.
type Compression struct {
	RunBlocks int // blocks per run; 0 never encodes
	Spread    int // appends a run's encoding is spread over
	MinRun    int // the shortest stretch of one layout worth encoding
	MinBatch  int // the fewest cells an append encodes while a run is pending
}

// DefaultCompression is what New sets. A run is five minutes of polls at
// 10s, which spreads each series' header (its first value, its length and a
// share of an offset, about six bytes) over thirty samples, and its encoding
// takes half as many appends, so an append encodes two samples per series.
// On the per-port fabric, runs of sixty encode 5% tighter but keep more
// blocks plain (the whole history took 19% more heap) and double the
// encoding per append. A shorter stretch of one layout (the fabric changed
// twice within it) stays plain, as encoding it would save little. A small
// fabric's run is encoded in one append.
var DefaultCompression = Compression{RunBlocks: 30, Spread: 15, MinRun: 8, MinBatch: 1 << 18}

// View is the history as of one Append: blocks in increasing time order.
type View struct {
	blocks []*block
	// metrics describes the newest snapshot's columns, for metadata of
	// columns the schema table does not know.
	metrics []schema.Metric
}

// block is one snapshot's samples, a value per series of its layout in id
// order: in values while the block is in the head, else in cell idx of an
// encoded run. The layout is shared with neighbouring blocks, so a steady
// fabric stores its samples and nothing else.
type block struct {
	t      int64 // milliseconds since the epoch
	lay    *layout
	values []float64
	enc    *encoded
	idx    int
}

// encoded is a run: the samples of consecutive blocks of one layout,
// encoded per series (codec.go), series after series in id order, each
// after its length as a varint. offs has the start of every seriesGroup-th
// series: an offset per series would take a tenth of the run.
type encoded struct {
	cells int    // blocks
	data  []byte // the series' encodings
	offs  []uint32
}

const seriesGroup = 16

// series returns the encoding of series id.
func (r *encoded) series(id int32) []byte {
	b := r.data[r.offs[id/seriesGroup]:]
	for i := id % seriesGroup; ; i-- {
		n, w := binary.Uvarint(b)
		if i == 0 {
			return b[w : w+int(n)]
		}
		b = b[w+int(n):]
	}
}

func (r *encoded) bytes() int { return len(r.data) + 4*len(r.offs) }

// New returns an empty history that keeps snapshots for retention
// (DefaultRetention if not positive), measured back from the newest
// snapshot's time, and encodes them as DefaultCompression says.
func New(retention time.Duration) *History {
	if retention <= 0 {
		retention = DefaultRetention
	}
	h := &History{retention: retention.Milliseconds(), comp: DefaultCompression}
	h.drops.init()
	h.view.Store(&View{})
	return h
}

// WithMaxSeries sets the history's series budget, and returns h: at most n
// series (0: no limit) held at once, counted per layout (a snapshot's rows
// times its columns; the snapshots that share a layout, as a steady
// fabric's do, share its series). When an Append would go over it, the
// oldest snapshots are dropped first, a layout at a time, since a layout's
// series are held until its last snapshot goes (whole encoded runs go
// with it); a snapshot that alone has more than n series is not appended.
// Both are counted as SeriesBudget. It must be called before the first
// Append, by the goroutine that will append.
func (h *History) WithMaxSeries(n int) *History {
	h.maxSeries = max(n, 0)
	return h
}

// WithLogger sets where the history logs what it drops (nothing without
// one), and returns h. It must be called before the first Append, by the
// goroutine that will append.
func (h *History) WithLogger(l *slog.Logger) *History {
	h.drops.logger = l
	return h
}

// WithCompression sets how h encodes its blocks, and returns h. It must be
// called before the first Append, by the goroutine that will append.
func (h *History) WithCompression(c Compression) *History {
	h.comp = c
	return h
}

// Append adds a snapshot, stamped with its source time, and drops the
// blocks older than the retention before it. Append must only be called by
// one goroutine.
//
// The history always ends with s afterwards, unless s alone is over the
// series budget: a snapshot with the time of the newest block replaces it
// (a source that did not move on), and an older one rewinds the history: the
// blocks after its time are dropped (counted as Rewound) before it is
// appended, since a series' samples must be in time order and the history
// must follow what the source now says. Then the series budget may drop the
// oldest blocks (see WithMaxSeries).
func (h *History) Append(s *snapshot.Snapshot) {
	defer h.drops.flush()
	old := h.view.Load()
	t := s.Time().UnixMilli()
	keep := old.blocks
	from := sort.Search(len(keep), func(i int) bool { return keep[i].t >= t })
	rewound := len(keep) - from
	if rewound > 0 && keep[from].t == t {
		rewound-- // the block of s's own time is replaced, not rewound
	}
	keep = keep[:from]
	lay, rows, ok := h.layoutFor(s, keep)
	if !ok {
		if n := s.NumRows() * len(s.Metrics()); h.maxSeries > 0 && n > h.maxSeries {
			h.drops.refused(s, n, h.maxSeries)
			return
		}
		lay = newLayout(s)
	}
	if from < len(old.blocks) {
		h.truncated(t)
	}
	if rewound > 0 {
		h.drops.rewound(old.blocks[len(old.blocks)-1].t, t, rewound)
	}
	h.last, h.lastLay, h.lastRows = s, lay, rows
	first := sort.Search(len(keep), func(i int) bool { return keep[i].t >= t-h.retention })
	keep, evicted, series := h.evict(keep[first:], lay)
	if evicted > 0 {
		h.drops.evicted(evicted, keep, t, series, h.maxSeries)
	}
	blocks := make([]*block, 0, len(keep)+1)
	blocks = append(blocks, keep...)
	blocks = append(blocks, &block{t: t, lay: lay, values: lay.gather(s, rows)})
	h.compress(blocks)
	v := &View{blocks: blocks, metrics: s.Metrics()}
	h.view.Store(v)
	if d := h.disk.Load(); d != nil {
		d.notify(v)
	}
	h.drops.appended()
}

// truncated keeps the encoder's state right after the blocks from t on
// were dropped from the end of the history: a pending run that had some of
// them is abandoned (its remaining blocks are plain, and are cut again),
// and the next cut may start no later than t. Encoded runs need nothing:
// the blocks that stay still read their cells by index.
func (h *History) truncated(t int64) {
	if p := h.pending; p != nil && p.blocks[len(p.blocks)-1].t >= t {
		h.pending = nil
		h.cutFrom = min(h.cutFrom, p.blocks[0].t)
	}
	h.cutFrom = min(h.cutFrom, t)
}

// evict drops the oldest of blocks, a layout at a time, until the series
// of the layouts left and of lay, the next block's, are within the budget,
// and returns the blocks kept, how many went, and the series held. A
// layout's blocks are contiguous (layoutFor only ever reuses the newest
// block's layout), so each group dropped frees its layout's series. A
// pending run of a dropped layout is abandoned, so that nothing holds its
// blocks.
func (h *History) evict(blocks []*block, lay *layout) (kept []*block, evicted, series int) {
	series = seriesOf(blocks)
	if n := len(blocks); n == 0 || blocks[n-1].lay != lay {
		series += lay.numSeries()
	}
	if h.maxSeries <= 0 {
		return blocks, 0, series
	}
	i := 0
	for i < len(blocks) && series > h.maxSeries {
		l := blocks[i].lay
		if l == lay {
			break // only the next block's own layout is left
		}
		for i < len(blocks) && blocks[i].lay == l {
			i++
		}
		series -= l.numSeries()
		if h.pending != nil && h.pending.lay == l {
			h.pending = nil
		}
	}
	return blocks[i:], i, series
}

// seriesOf counts the series of blocks' layouts, each once.
func seriesOf(blocks []*block) int {
	n := 0
	var last *layout
	for _, b := range blocks {
		if b.lay != last {
			last = b.lay
			n += last.numSeries()
		}
	}
	return n
}

// compress moves the encoding of old blocks on by one batch of series,
// starting a run if none is pending, and when the run is done swaps its
// blocks in blocks (the slice about to be published, so no reader has it
// yet) for blocks that read the run. The newest block is never in a run, so
// replacing it (a snapshot with the same time) never touches one.
func (h *History) compress(blocks []*block) {
	if h.comp.RunBlocks <= 0 {
		return
	}
	if h.pending == nil {
		if h.pending = h.cut(blocks); h.pending == nil {
			return
		}
	}
	p := h.pending
	batch := max((p.lay.numSeries()+h.comp.Spread-1)/max(h.comp.Spread, 1), h.comp.MinBatch/len(p.blocks), 1)
	if !p.encode(batch) {
		return
	}
	h.pending = nil
	r := p.finish()
	if r == nil {
		return
	}
	if cells := r.cells * p.lay.numSeries(); cells > 0 {
		h.cellBytes = float64(len(r.data)) / float64(cells)
	}
	// Both lists are in time order; blocks may have lost some of the run's
	// to the retention since the cut.
	j := 0
	for i, b := range blocks {
		for j < len(p.blocks) && p.blocks[j].t < b.t {
			j++
		}
		if j < len(p.blocks) && p.blocks[j] == b {
			blocks[i] = &block{t: b.t, lay: b.lay, enc: r, idx: j}
		}
	}
}

// cut returns the next run to encode: the oldest plain blocks from cutFrom
// on that share a layout, once there are runBlocks of them or the layout
// changed after them, leaving out the newest block. A history kept on disk
// encodes every stretch a new layout closed, however short, since the disk
// keeps only encoded runs.
func (h *History) cut(blocks []*block) *pendingRun {
	end := len(blocks) - 1
	i := sort.Search(end, func(i int) bool { return blocks[i].t >= h.cutFrom })
	if i >= end {
		return nil
	}
	lay := blocks[i].lay
	j := i
	for j < end && j-i < h.comp.RunBlocks && blocks[j].lay == lay {
		j++
	}
	switch n := j - i; {
	case n == h.comp.RunBlocks:
	case j < end && n < h.comp.MinRun && h.disk.Load() == nil: // closed by a new layout, and short
		h.cutFrom = blocks[j].t
		return nil
	case j < end: // closed by a new layout
	default:
		return nil // not yet runBlocks of them
	}
	h.cutFrom = blocks[j-1].t + 1
	return newPendingRun(blocks[i:j], int(h.cellBytes*1.05*float64((j-i)*lay.numSeries())))
}

// pendingRun is a run being encoded, by the writer alone, from plain blocks
// that stay in the published views until it is done.
type pendingRun struct {
	blocks []*block // plain, one layout, oldest first
	lay    *layout
	next   int // the next series id to encode
	data   []byte
	offs   []uint32
	failed bool // too large for 32-bit offsets: the blocks stay plain
	tile   []float64
	cells  []float64
	enc    encoder
	buf    []byte // one series' encoding
}

// tileSeries is how many series encode reads from each block at a time:
// reading a series across thirty blocks' arrays directly would touch thirty
// cache lines per series.
const tileSeries = 64

// newPendingRun starts a run of blocks, with room for size bytes of
// encodings (a guess from the last run, to spare regrowing and copying).
func newPendingRun(blocks []*block, size int) *pendingRun {
	lay := blocks[0].lay
	return &pendingRun{
		blocks: slices.Clone(blocks),
		lay:    lay,
		data:   make([]byte, 0, size),
		offs:   make([]uint32, 0, lay.numSeries()/seriesGroup+1),
		tile:   make([]float64, len(blocks)*tileSeries),
		cells:  make([]float64, len(blocks)),
	}
}

// encode encodes up to n more series and reports whether all are done.
func (p *pendingRun) encode(n int) bool {
	end := min(p.next+n, p.lay.numSeries())
	for id0 := p.next; id0 < end; id0 += tileSeries {
		w := min(tileSeries, end-id0)
		for j, b := range p.blocks {
			copy(p.tile[j*tileSeries:j*tileSeries+w], b.values[id0:id0+w])
		}
		for i := range w {
			for j := range p.cells {
				p.cells[j] = p.tile[j*tileSeries+i]
			}
			if (id0+i)%seriesGroup == 0 {
				p.offs = append(p.offs, uint32(len(p.data)))
			}
			p.buf = p.enc.encode(p.buf[:0], p.cells, p.lay.scaleOf(int32(id0+i)))
			p.data = binary.AppendUvarint(p.data, uint64(len(p.buf)))
			p.data = append(p.data, p.buf...)
			if len(p.data) > math.MaxUint32 {
				p.failed = true
				return true
			}
		}
	}
	p.next = end
	return end == p.lay.numSeries()
}

// finish returns the run, its data copied to fit if append left much
// spare room, or nil if it failed.
func (p *pendingRun) finish() *encoded {
	if p.failed {
		return nil
	}
	data := p.data
	if cap(data)-len(data) > len(data)/16 {
		data = slices.Clone(data)
	}
	return &encoded{cells: len(p.blocks), data: data, offs: p.offs}
}

// layoutFor reuses the layout of the newest of blocks when s has its
// columns and its rows, or its rows less some switches missing from this
// poll; rows then maps the layout's rows to s's. ok is false when s needs a
// layout of its own. This saves building a series table and index per
// poll, and keeps one layout through drop-outs, so queries take the
// single-layout path. The parser shares row storage between snapshots with
// the same rows, which makes the common case one pointer comparison.
func (h *History) layoutFor(s *snapshot.Snapshot, blocks []*block) (lay *layout, rows []int32, ok bool) {
	n := len(blocks)
	if n == 0 {
		return nil, nil, false
	}
	lay = blocks[n-1].lay
	if !lay.sameColumns(s) {
		return nil, nil, false
	}
	if lay == h.lastLay && s.SameRows(h.last) {
		return lay, h.lastRows, true
	}
	if rows, ok := lay.rowMap(s); ok {
		return lay, rows, true
	}
	return nil, nil, false
}

// Load returns the current view. It never changes; later appends publish
// new views.
func (h *History) Load() *View { return h.view.Load() }

// Len is the number of snapshots in the view.
func (v *View) Len() int { return len(v.blocks) }

// Samples is the number of stored values, absent cells included.
func (v *View) Samples() int {
	n := 0
	for _, b := range v.blocks {
		n += b.lay.numSeries()
	}
	return n
}

// Stats is what a view holds: its series, counted per layout as the series
// budget counts them (see WithMaxSeries), and the bytes its samples take, in
// the head (plain values) and in encoded runs (each run counted once, whole,
// even when the retention has dropped some of its blocks), and an estimate
// of its layouts' series tables (label values, order and index).
type Stats struct {
	Series, Layouts              int
	PlainSamples, PlainBytes     int
	EncodedSamples, EncodedBytes int
	Runs                         int
	LayoutBytes                  int
}

// Bytes is the view's whole size: samples and layouts.
func (st Stats) Bytes() int { return st.PlainBytes + st.EncodedBytes + st.LayoutBytes }

// Stats counts the view's series, samples and the bytes they take.
func (v *View) Stats() Stats {
	var st Stats
	var last *encoded
	var lastLay *layout
	for _, b := range v.blocks {
		if b.lay != lastLay {
			lastLay = b.lay
			st.Layouts++
			st.Series += b.lay.numSeries()
			st.LayoutBytes += b.lay.bytes
		}
		if b.values != nil {
			st.PlainSamples += len(b.values)
			st.PlainBytes += 8 * len(b.values)
			continue
		}
		st.EncodedSamples += b.lay.numSeries()
		if b.enc != last {
			last = b.enc
			st.Runs++
			st.EncodedBytes += b.enc.bytes()
		}
	}
	return st
}

// Metrics describes the newest snapshot's columns, for metadata of columns
// the schema table does not know. The caller must not modify it.
func (v *View) Metrics() []schema.Metric { return v.metrics }

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
