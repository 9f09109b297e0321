package history

import (
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

type seriesSet struct {
	sel  *selection
	refs []seriesRef
	i    int
}

func (s *seriesSet) Next() bool {
	s.i++
	return s.i < len(s.refs)
}

func (s *seriesSet) At() storage.Series { return &s.refs[s.i] }

func (*seriesSet) Err() error { return nil }

func (*seriesSet) Warnings() annotations.Annotations { return nil }

// lazySet is the series of one layout, ids in label order, each series made
// when Next reaches it. Label-only lookups skip the series without a sample
// in the selection.
type lazySet struct {
	sel       *selection
	lay       *layout
	ids       []int32
	labelOnly bool
	i         int
	cur       seriesRef
	b         labels.ScratchBuilder
}

func (s *lazySet) Next() bool {
	for s.i+1 < len(s.ids) {
		s.i++
		ids := s.ids[s.i : s.i+1 : s.i+1]
		if s.labelOnly && !s.sel.hasSamples(ids) {
			continue
		}
		s.cur = seriesRef{sel: s.sel, lset: s.lay.seriesLabels(&s.b, ids[0]), ids: ids}
		return true
	}
	return false
}

// At returns a series of its own: the engine keeps the series it reads.
func (s *lazySet) At() storage.Series { r := s.cur; return &r }

func (*lazySet) Err() error { return nil }

func (*lazySet) Warnings() annotations.Annotations { return nil }

func (s *seriesRef) Labels() labels.Labels { return s.lset }

func (s *seriesRef) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	si, ok := it.(*sampleIterator)
	if !ok {
		si = &sampleIterator{}
	}
	*si = sampleIterator{sel: s.sel, ids: s.ids, i: -1, dec: si.dec}
	return si
}

// sampleIterator walks a series through the blocks of a selection. Where the
// series is missing from a block that follows one where it was present, it
// yields a staleness marker at that block's time, as Prometheus does for a
// series that disappears from a scrape: the engine then ends the series at
// once instead of carrying its last value for the lookback delta.
type sampleIterator struct {
	sel  *selection
	ids  []int32
	i    int // current block, -1 before the first Next
	t    int64
	v    float64
	live bool // the series had a sample in block i (so a gap is a new staleness)
	dec  decoder
}

func (it *sampleIterator) Next() chunkenc.ValueType {
	for it.i+1 < len(it.sel.blocks) {
		it.i++
		v, ok := it.sel.cell(it.ids, it.i, &it.dec)
		switch {
		case ok:
			it.t, it.v, it.live = it.sel.blocks[it.i].t, v, true
			return chunkenc.ValFloat
		case it.live:
			it.t, it.v, it.live = it.sel.blocks[it.i].t, math.Float64frombits(value.StaleNaN), false
			return chunkenc.ValFloat
		}
	}
	it.i = len(it.sel.blocks)
	return chunkenc.ValNone
}

// millis is a time in milliseconds since the epoch, Prometheus storage's
// unit. It is an alias, so Seek below has exactly chunkenc.Iterator's
// signature; naming the unit also keeps go vet's stdmethods check, which
// knows io.Seeker's Seek(int64, int) by the spelling of its first
// parameter's type, from taking this Seek for a broken io.Seeker.
type millis = int64

// Seek jumps to the first block at or after t, with the state of the block
// before it, so a staleness marker at the landing block is not lost.
func (it *sampleIterator) Seek(t millis) chunkenc.ValueType {
	if it.i >= len(it.sel.blocks) {
		return chunkenc.ValNone
	}
	if it.i >= 0 && it.t >= t {
		return chunkenc.ValFloat
	}
	blocks := it.sel.blocks
	lo, hi := max(it.i+1, 0), len(blocks)
	for lo < hi { // first block with time >= t
		mid := int(uint(lo+hi) >> 1)
		if blocks[mid].t < t {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo > 0 && lo-1 > it.i {
		_, it.live = it.sel.cell(it.ids, lo-1, &it.dec)
	}
	it.i = lo - 1
	return it.Next()
}

func (it *sampleIterator) At() (int64, float64) { return it.t, it.v }

func (it *sampleIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.t, nil
}

func (it *sampleIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.t, nil
}

func (it *sampleIterator) AtT() int64 { return it.t }

// AtST is zero: snapshots carry no start (creation) timestamps.
func (*sampleIterator) AtST() int64 { return 0 }

func (*sampleIterator) Err() error { return nil }

func isAbsent(v float64) bool { return math.Float64bits(v) == absentBits }
