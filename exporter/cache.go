package exporter

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// A snapshot never changes, so its exposition is rendered at most once per
// format, on the first scrape that asks for that format (a format no scraper
// uses costs nothing), and then served as bytes to every scrape until a view
// without it replaces it.
//
// The data part of /metrics is a list of segments: the view-level gauges,
// and one segment per snapshot part of the view. A segment is cached per
// part, so when one source publishes, the next view's unchanged part is
// served from the bytes rendered for the previous view and only the new
// part is rendered; and a new part with the same rows as an old one (a
// steady fabric) reuses its rendered label sets.

// encoding is one way the data part of /metrics is served.
type encoding int

const (
	encText encoding = iota
	encOpenMetrics
	numEncodings
)

// lazy is a value computed once, by the first caller that needs it.
type lazy[T any] struct {
	once sync.Once
	v    T
}

func (l *lazy[T]) get(f func() T) T {
	l.once.Do(func() { l.v = f() })
	return l.v
}

// segment is one run of families of the data part: the view-level gauges,
// or the data families of one snapshot part.
type segment struct {
	snap   *snapshot.Snapshot // nil for the view-level gauges
	fams   []family           // sorted by name
	labels *lazy[*rowLabels]  // shared with the segments of snapshots with the same rows
	plain  [numEncodings]lazy[[]byte]
	flate  [numEncodings]lazy[deflated]
	// onRender is told how many series a rendering skipped.
	onRender func(openMetrics bool, skipped int)
}

// deflated is a segment compressed once: deflate blocks that end
// byte-aligned and not final, so that a response can string the segments
// of a view together and carry on the same deflate stream with the small
// self-metrics part and close it. The CRC and length let it write a correct
// gzip trailer for the whole body.
type deflated struct {
	data []byte
	crc  uint32
	size int // length of the uncompressed data
}

func (s *segment) body(enc encoding) []byte {
	return s.plain[enc].get(func() []byte {
		var rl *rowLabels
		if s.snap != nil {
			rl = s.labels.get(func() *rowLabels { return renderRowLabels(s.snap) })
		}
		b, skipped := renderFamilies(s.snap, rl, s.fams, enc == encOpenMetrics)
		if s.onRender != nil {
			s.onRender(enc == encOpenMetrics, skipped)
		}
		return b
	})
}

func (s *segment) deflated(enc encoding) deflated {
	return s.flate[enc].get(func() deflated {
		data := s.body(enc)
		var buf bytes.Buffer
		buf.Grow(len(data)/8 + 64)
		fw := fastFlateWriters.Get().(*flate.Writer)
		defer fastFlateWriters.Put(fw)
		fw.Reset(&buf)
		_, _ = fw.Write(data) // bytes.Buffer does not fail
		_ = fw.Flush()        // sync flush: byte-aligned, stream left open
		return deflated{data: buf.Bytes(), crc: crc32.ChecksumIEEE(data), size: len(data)}
	})
}

// firstName orders segments as Gather orders families (fabric_port_*,
// fabric_snapshot_*, fabric_switch_*); an empty segment goes last.
func (s *segment) firstName() string {
	if len(s.fams) == 0 {
		return "\xff"
	}
	return s.fams[0].name
}

// exposition is the data part of /metrics for one view.
type exposition struct {
	view *snapshot.View
	segs []*segment
	sum  [numEncodings]lazy[deflated] // crc and size of all segments; no data
	// dropped are families of a part left out because an earlier part
	// exports the same name.
	dropped []string
}

// writeBody writes every segment uncompressed.
func (x *exposition) writeBody(w io.Writer, enc encoding) error {
	for _, s := range x.segs {
		if _, err := w.Write(s.body(enc)); err != nil {
			return err
		}
	}
	return nil
}

// size is the length of the uncompressed data part.
func (x *exposition) size(enc encoding) int {
	n := 0
	for _, s := range x.segs {
		n += len(s.body(enc))
	}
	return n
}

// writeDeflated writes every segment's deflate blocks and returns the CRC
// and length of the data they hold.
func (x *exposition) writeDeflated(w io.Writer, enc encoding) (crc uint32, size int, err error) {
	for _, s := range x.segs {
		if _, err := w.Write(s.deflated(enc).data); err != nil {
			return 0, 0, err
		}
	}
	sum := x.sum[enc].get(func() deflated {
		var sum deflated
		for _, s := range x.segs {
			d := s.deflated(enc)
			sum.crc = crc32Combine(sum.crc, d.crc, d.size)
			sum.size += d.size
		}
		return sum
	})
	return sum.crc, sum.size, nil
}

// gzipHeader is a minimal gzip member header (RFC 1952): deflate, no flags,
// no modification time, unknown OS, as compress/gzip writes by default.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

// flateWriters compress the small per-scrape tail; fastFlateWriters the
// segments, once each, at BestSpeed: about 4x faster than the default level
// at 1M series for some 15% more bytes, and the first gzip scrape of a new
// part waits for it. A writer holds about 1 MB of state: pooled, since a
// view has a segment for its few gauges too.
var (
	flateWriters = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(io.Discard, flate.DefaultCompression) // err only for a bad level
		return fw
	}}
	fastFlateWriters = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
		return fw
	}}
)

// writeGzipTail ends a gzip stream whose header and byte-aligned deflate
// blocks (holding size bytes with checksum crc) are written: it compresses
// tail, closes the deflate stream and writes the trailer.
func writeGzipTail(w io.Writer, crc uint32, size int, tail []byte) error {
	// The tail starts a fresh compressor: its back-references stay within
	// the tail, so it can follow the flushed data blocks in one stream.
	fw := flateWriters.Get().(*flate.Writer)
	defer flateWriters.Put(fw)
	fw.Reset(w)
	if _, err := fw.Write(tail); err != nil {
		return err
	}
	if err := fw.Close(); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc32.Update(crc, crc32.IEEETable, tail))
	binary.LittleEndian.PutUint32(trailer[4:], uint32(size+len(tail))) // mod 2^32, as RFC 1952 says
	_, err := w.Write(trailer[:])
	return err
}

// crc32Combine returns the CRC-32 (IEEE) of a‖b from the CRCs of a and b
// and the length of b, without reading either: zlib's crc32_combine. It
// appends len(b) zero bits to crcA by squaring the operator that appends
// one, in GF(2), and adds crcB.
func crc32Combine(crcA, crcB uint32, lenB int) uint32 {
	if lenB <= 0 {
		return crcA
	}
	var even, odd [32]uint32 // operators for 2^k zero bits, alternately
	odd[0] = crc32.IEEE      // one zero bit
	row := uint32(1)
	for n := 1; n < 32; n++ {
		odd[n] = row
		row <<= 1
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four zero bits
	// Each round squares the operator to the next power of two bits: the
	// first takes it to one zero byte.
	for {
		gf2Square(&even, &odd)
		if lenB&1 != 0 {
			crcA = gf2Times(&even, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
		gf2Square(&odd, &even)
		if lenB&1 != 0 {
			crcA = gf2Times(&odd, crcA)
		}
		if lenB >>= 1; lenB == 0 {
			break
		}
	}
	return crcA ^ crcB
}

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := range mat {
		square[n] = gf2Times(mat, mat[n])
	}
}

// expositionCache holds the exposition of the store's latest view.
type expositionCache struct {
	store    snapshot.Loader
	current  atomic.Pointer[exposition]
	onRender func(openMetrics bool, skipped int)
	// onDropped is told when the families left out for a name clash
	// between parts change.
	onDropped func(names []string)
}

// get returns the exposition of the store's current view, nil before the
// first or for a view without parts. The cached exposition is loaded before
// the store, and the store only moves forward, so a scrape that lost a race
// never puts an older view back; the replaced exposition is garbage once its
// last scrape ends, but its segments live on in the next one where the
// parts are the same.
func (c *expositionCache) get() *exposition {
	for {
		cur := c.current.Load()
		view := c.store.Load()
		switch {
		case view == nil || len(view.Parts()) == 0:
			return nil
		case cur != nil && cur.view == view:
			return cur
		}
		next := c.next(cur, view)
		if c.current.CompareAndSwap(cur, next) {
			var before []string
			if cur != nil {
				before = cur.dropped
			}
			if c.onDropped != nil && !slices.Equal(before, next.dropped) {
				c.onDropped(next.dropped)
			}
			return next
		}
	}
}

// next builds the exposition of view, taking over from prev (may be nil)
// the segments of parts that did not change and the label sets of parts
// with the same rows. Nothing is rendered here.
func (c *expositionCache) next(prev *exposition, view *snapshot.View) *exposition {
	x := &exposition{view: view, segs: make([]*segment, 0, 1+len(view.Parts()))}
	x.segs = append(x.segs, &segment{fams: viewGauges(view)})
	claimed := map[string]bool{}
	for _, p := range view.Parts() {
		fams, dropped := claim(claimed, dataFamilies(p))
		x.dropped = append(x.dropped, dropped...)
		x.segs = append(x.segs, c.partSegment(prev, p, fams))
	}
	slices.SortStableFunc(x.segs, func(a, b *segment) int { return strings.Compare(a.firstName(), b.firstName()) })
	return x
}

func (c *expositionCache) partSegment(prev *exposition, p *snapshot.Snapshot, fams []family) *segment {
	var labels *lazy[*rowLabels]
	if prev != nil {
		for _, s := range prev.segs {
			if s.snap == p && sameNames(s.fams, fams) {
				return s
			}
		}
		for _, s := range prev.segs {
			if s.snap != nil && p.SameRows(s.snap) && p.NumRows() == s.snap.NumRows() &&
				slices.Equal(p.LabelNames(), s.snap.LabelNames()) {
				labels = s.labels
				break
			}
		}
	}
	if labels == nil {
		labels = new(lazy[*rowLabels])
	}
	return &segment{snap: p, fams: fams, labels: labels, onRender: c.onRender}
}

func sameNames(a, b []family) bool {
	return slices.EqualFunc(a, b, func(x, y family) bool { return x.name == y.name })
}
