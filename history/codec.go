package history

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/fabrictelemetry/aggregator/schema"
)

// The encoding of one series' cells in a run of blocks (see encoded). Every
// cell of the run is encoded, absent ones included, so the n-th value
// decoded is the n-th block's. The first byte says how:
//
//	kindAbsent   no cell has a value
//	kindConst    every cell has the same value, a decimal (below) given as
//	             a zig-zag varint
//	kindConstRaw every cell has the same value, its 8 bytes follow
//	kindInt      the values are decimals: an integer k per cell such that
//	             the value is exactly k / 10^d times the column's scale,
//	             computed as gather computes it
//	kindXOR      anything else: a Prometheus XOR chunk (tsdb/chunkenc)
//	             whose timestamps are the cell indexes, one bit per cell
//
// The high bits of the first byte hold d and, for kindInt, whether k is
// predicted by the previous k (delta) or by the previous k plus the previous
// delta (delta of delta). kindInt goes on with a byte m and the first k (a
// varint; kindIntLate, for a series whose first cells are absent, has the
// index of its first present cell before it), then a bit stream with the
// difference r of each later cell from its prediction, Rice coded: zig-zag
// u = 2|r| (or 2|r|-1 below zero), u>>m in unary (that many ones, then a
// zero) and the low m bits of u. A quotient of eight or more escapes: eight
// ones, six bits of length n and u without its leading one (n-1 bits);
// length 0 marks an absent cell. The encoder picks the prediction and m
// that give the fewest bits, so a cell costs about m+2 bits where m is the
// size of a typical change.
//
// Counters are integers (d = 0) and the simulator's gauges have three
// decimals, so nearly every series is kindInt: on the simulator's data,
// in runs of thirty, 1.7 to 2 bytes a sample (offsets included) against 4.4
// to 4.6 as XOR chunks; a busy byte counter still takes five bytes, an idle
// one a bit. A value that is not such a decimal
// (a NaN from the source, a computed float, -0) sends its series to
// kindXOR. The encoder checks every value, so decoding gives back the
// stored bits exactly.
const (
	kindAbsent byte = iota
	kindConst
	kindConstRaw
	kindInt
	kindXOR
	kindIntLate // kindInt whose first cell is absent

	kindMask  = 0x07
	dShift    = 3
	dMask     = 0x0f
	dodFlag   = 0x80
	maxDigits = 9
)

// kLimit bounds |k| so that no difference or prediction overflows.
const kLimit = 1 << 60

// noK marks an absent cell among the integers of a series.
const noK = math.MinInt64

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

// fromDecimal is the value of k with d decimals, scaled as gather scales a
// source value (schema.Scaled), so that the bits are equal.
func fromDecimal(k int64, d int, scale float64) float64 {
	return schema.ScaledDecimal(k, d, scale)
}

// decimal returns k such that fromDecimal(k, d, scale) has v's bits.
func decimal(v float64, d int, scale float64) (int64, bool) {
	x := v
	if scale != 1 && scale != 0 {
		x /= scale
	}
	x *= pow10[d]
	if !(math.Abs(x) < kLimit) { // also false for NaN
		return 0, false
	}
	k := int64(math.Round(x))
	return k, math.Float64bits(fromDecimal(k, d, scale)) == math.Float64bits(v)
}

// decimals converts cells to integers with the fewest decimals that hold
// every value exactly; absent cells become noK. ok is false if some value
// is no such decimal.
func decimals(cells []float64, scale float64, ks []int64) (_ []int64, d int, ok bool) {
	ks = ks[:0]
	unscaled := scale == 1 || scale == 0
	for i := 0; i < len(cells); i++ {
		v := cells[i]
		if isAbsent(v) {
			ks = append(ks, noK)
			continue
		}
		// A counter: an integral value needs no division to check.
		if d == 0 && unscaled && v == math.Trunc(v) && math.Abs(v) < kLimit && (v != 0 || !math.Signbit(v)) {
			ks = append(ks, int64(v))
			continue
		}
		k, ok := decimal(v, d, scale)
		if ok {
			ks = append(ks, k)
			continue
		}
		// More decimals than the values before: find how many, then
		// convert them again.
		for d++; d <= maxDigits; d++ {
			if _, ok = decimal(v, d, scale); ok {
				break
			}
		}
		if !ok {
			return ks, 0, false
		}
		ks, i = ks[:0], -1
	}
	return ks, d, true
}

func zigzag(x int64) uint64   { return uint64(x<<1) ^ uint64(x>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// Rice coding: a quotient from riceEscape on is written as an escape.
const (
	riceEscape  = 8
	riceEscapes = 1<<riceEscape - 1 // the escape's ones
	noU         = math.MaxUint64    // an absent cell among the residuals
)

// encoder encodes series, keeping its scratch space between them.
type encoder struct {
	ks []int64
	us [2][]uint64 // the residuals by delta (0) and delta of delta (1)
}

// residuals sets e.us to the zig-zag differences of the present values
// after ks[first] from their predictions, by delta and by delta of delta,
// noU for absent cells, and returns the sum of their bit lengths per kind.
func (e *encoder) residuals(ks []int64, first int) (lens [2]int) {
	d, dd := e.us[0][:0], e.us[1][:0]
	prevK, prevDelta, count := ks[first], int64(0), 1
	for _, k := range ks[first+1:] {
		if k == noK {
			d, dd = append(d, noU), append(dd, noU)
			continue
		}
		delta := k - prevK
		u := zigzag(delta)
		d = append(d, u)
		lens[0] += bits.Len64(u)
		if count >= 2 {
			u = zigzag(delta - prevDelta)
		}
		dd = append(dd, u)
		lens[1] += bits.Len64(u)
		prevK, prevDelta = k, delta
		count++
	}
	e.us[0], e.us[1] = d, dd
	return lens
}

// bestRice returns the m that codes us in the fewest bits among four
// around the size of their mean.
func bestRice(us []uint64) uint {
	var sum float64
	present := 0
	for _, u := range us {
		if u != noU {
			sum += float64(u)
			present++
		}
	}
	lo := 0
	if present > 0 && sum >= float64(present) {
		lo = max(int(math.Log2(sum/float64(present)))-2, 0)
	}
	lo = min(lo, 59)
	var n [4]int
	for _, u := range us {
		if u == noU {
			continue // the same cost whatever m is
		}
		esc := riceEscape + 6 + bits.Len64(u) - 1
		for c := range n {
			m := uint(lo + c)
			if q := u >> m; q < riceEscape {
				n[c] += int(q) + 1 + int(m)
			} else {
				n[c] += esc
			}
		}
	}
	best := 0
	for c := range n {
		if n[c] < n[best] {
			best = c
		}
	}
	return uint(lo + best)
}

// encode appends the encoding of one series' cells to dst.
func (e *encoder) encode(dst []byte, cells []float64, scale float64) []byte {
	first, same := -1, true
	for i, v := range cells {
		if first < 0 && !isAbsent(v) {
			first = i
		}
		same = same && math.Float64bits(v) == math.Float64bits(cells[0])
	}
	if first < 0 {
		return append(dst, kindAbsent)
	}
	ks, d, ok := decimals(cells, scale, e.ks)
	e.ks = ks
	switch {
	case same && ok:
		dst = append(dst, kindConst|byte(d)<<dShift)
		return binary.AppendUvarint(dst, zigzag(ks[0]))
	case same:
		dst = append(dst, kindConstRaw)
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(cells[0]))
	case !ok:
		return encodeXOR(dst, cells)
	}
	// The prediction whose differences are shorter, then the best m for
	// them.
	lens := e.residuals(ks, first)
	mode, us := kindInt|byte(d)<<dShift, e.us[0]
	if lens[1] < lens[0] {
		mode, us = mode|dodFlag, e.us[1]
	}
	m := bestRice(us)
	if first > 0 {
		mode = mode&^kindMask | kindIntLate
	}
	dst = append(dst, mode, byte(m))
	if first > 0 {
		dst = binary.AppendUvarint(dst, uint64(first))
	}
	dst = binary.AppendUvarint(dst, zigzag(ks[first]))
	w := bitWriter{buf: dst}
	for _, u := range us {
		switch q := u >> m; {
		case u == noU:
			w.write(riceEscapes<<6, riceEscape+6) // length 0
		case q < riceEscape && m <= 55:
			w.write((1<<(q+1)-2)<<m|u&(1<<m-1), uint(q)+1+m) // q ones, a zero, m bits
		case q < riceEscape:
			w.write(1<<(q+1)-2, uint(q)+1)
			w.write(u, m)
		default:
			n := uint(bits.Len64(u))
			w.write(riceEscapes<<6|uint64(n), riceEscape+6)
			w.write(u, n-1) // the leading one is implied
		}
	}
	return w.flush()
}

func encodeXOR(dst []byte, cells []float64) []byte {
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		panic(err) // an empty chunk always has an appender
	}
	for i, v := range cells {
		app.Append(0, int64(i), v)
	}
	return append(append(dst, kindXOR), c.Bytes()...)
}

// bitWriter appends bits to a byte slice, most significant first.
type bitWriter struct {
	buf []byte
	acc uint64 // pending bits, from the top
	n   uint   // how many
}

// write appends the low nbits (at most 64) of v.
func (w *bitWriter) write(v uint64, nbits uint) {
	if nbits < 64 {
		v &= 1<<nbits - 1
	}
	free := 64 - w.n
	if nbits < free {
		w.acc |= v << (free - nbits)
		w.n += nbits
		return
	}
	// Fill the accumulator, write it out, keep the rest.
	rest := nbits - free
	w.acc |= v >> rest
	w.buf = binary.BigEndian.AppendUint64(w.buf, w.acc)
	w.acc, w.n = 0, rest
	if rest > 0 {
		w.acc = v << (64 - rest)
	}
}

func (w *bitWriter) flush() []byte {
	for ; w.n > 0; w.n -= min(w.n, 8) {
		w.buf = append(w.buf, byte(w.acc>>56))
		w.acc <<= 8
	}
	return w.buf
}

// bitReader reads what bitWriter wrote; past the end it reads zeros.
type bitReader struct {
	b   []byte
	acc uint64 // unread bits, from the top
	n   uint   // how many
}

// fill loads bytes until at least 57 bits are unread, or the end.
func (r *bitReader) fill() {
	if len(r.b) >= 8 && r.n <= 56 {
		// Eight bytes at once: take as many whole bytes as fit.
		take := (64 - r.n) / 8
		r.acc |= binary.BigEndian.Uint64(r.b) >> r.n
		r.b = r.b[take:]
		r.n += take * 8
		r.acc &^= 1<<(64-r.n) - 1 // drop the bits of bytes not taken
		return
	}
	for r.n <= 56 && len(r.b) > 0 {
		r.acc |= uint64(r.b[0]) << (56 - r.n)
		r.b = r.b[1:]
		r.n += 8
	}
	if len(r.b) == 0 && r.n <= 56 {
		r.n = 64 // zeros from here on
	}
}

// read returns the next nbits (at most 64).
func (r *bitReader) read(nbits uint) uint64 {
	if nbits > 32 {
		hi := r.read(nbits - 32)
		return hi<<32 | r.read(32)
	}
	if nbits == 0 {
		return 0
	}
	if r.n < nbits {
		r.fill()
	}
	v := r.acc >> (64 - nbits)
	r.acc <<= nbits
	r.n -= nbits
	return v
}

// readUnary reads ones up to a zero, which it consumes, or up to limit
// ones (at most 32), and returns how many.
func (r *bitReader) readUnary(limit uint) uint {
	if r.n <= limit {
		r.fill()
	}
	q := min(uint(bits.LeadingZeros64(^r.acc)), limit)
	used := q
	if q < limit {
		used++
	}
	r.acc <<= used
	r.n -= used
	return q
}

// decoder reads one series of a run cell by cell. It is meant to move
// forward: at returns the value of a cell at or after the last one asked
// for without starting over.
type decoder struct {
	run  *encoded
	id   int32
	next int     // cells decoded
	v    float64 // the value of cell next-1 (absent bits if none)

	kind     byte
	d        int
	scale    float64
	dod      bool
	m        uint
	first    int // the first present cell (kindInt)
	bits     bitReader
	k, delta int64
	count    int // values decoded
	xor      chunkenc.XORChunk
	xorIt    chunkenc.Iterator
}

// at returns the value of series id in cell idx of r.
func (dec *decoder) at(r *encoded, lay *layout, id int32, idx int) float64 {
	if dec.run != r || dec.id != id || dec.next > idx+1 {
		dec.reset(r, lay, id)
	}
	for dec.next <= idx {
		dec.step()
	}
	return dec.v
}

func (dec *decoder) reset(r *encoded, lay *layout, id int32) {
	b := r.series(id)
	mode := b[0]
	*dec = decoder{
		run: r, id: id, v: absent,
		kind: mode & kindMask, d: int(mode >> dShift & dMask), dod: mode&dodFlag != 0,
		scale: lay.scaleOf(id), xor: dec.xor, xorIt: dec.xorIt,
	}
	b = b[1:]
	switch dec.kind {
	case kindConst:
		u, _ := binary.Uvarint(b)
		dec.v = fromDecimal(unzigzag(u), dec.d, dec.scale)
	case kindConstRaw:
		dec.v = math.Float64frombits(binary.LittleEndian.Uint64(b))
	case kindInt, kindIntLate:
		dec.m, b = uint(b[0]), b[1:]
		if dec.kind == kindIntLate {
			first, n := binary.Uvarint(b)
			dec.first, b = int(first), b[n:]
			dec.kind = kindInt
		}
		u, n := binary.Uvarint(b)
		dec.k = unzigzag(u)
		dec.bits = bitReader{b: b[n:]}
	case kindXOR:
		dec.xor.Reset(b)
		dec.xorIt = dec.xor.Iterator(dec.xorIt)
	}
}

// anyIn reports whether series id has a value in a cell from lo to hi.
func (dec *decoder) anyIn(r *encoded, lay *layout, id int32, lo, hi int) bool {
	dec.reset(r, lay, id)
	switch dec.kind {
	case kindAbsent:
		return false
	case kindConst, kindConstRaw:
		return true
	}
	for dec.next <= hi {
		dec.step()
		if dec.next > lo && !isAbsent(dec.v) {
			return true
		}
	}
	return false
}

// step decodes the next cell into v.
func (dec *decoder) step() {
	dec.next++
	switch dec.kind {
	case kindInt:
		c := dec.next - 1
		switch {
		case c < dec.first:
			return // absent, as reset set
		case c == dec.first:
			dec.v, dec.count = fromDecimal(dec.k, dec.d, dec.scale), 1
			return
		}
		q := uint64(dec.bits.readUnary(riceEscape))
		var u uint64
		if q < riceEscape {
			u = q<<dec.m | dec.bits.read(dec.m)
		} else {
			n := uint(dec.bits.read(6))
			if n == 0 {
				dec.v = absent
				return
			}
			u = 1<<(n-1) | dec.bits.read(n-1)
		}
		var pred int64
		if dec.dod && dec.count >= 2 {
			pred = dec.delta
		}
		dec.delta = pred + unzigzag(u)
		dec.k += dec.delta
		dec.count++
		dec.v = fromDecimal(dec.k, dec.d, dec.scale)
	case kindXOR:
		dec.v = absent
		if dec.xorIt.Next() == chunkenc.ValFloat {
			_, dec.v = dec.xorIt.At()
		}
	}
	// kindAbsent, kindConst and kindConstRaw keep the value reset set.
}
