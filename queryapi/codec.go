package queryapi

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The encoding of one series' cells in a run of blocks (see encoded). Every
// cell of the run is encoded, absent ones included, so the n-th value
// decoded is the n-th block's. The first byte says how:
//
//	kindAbsent   no cell has a value
//	kindConst    every cell has the same value, given as a decimal
//	             (below) in a zig-zag varint
//	kindConstRaw every cell has the same value, its 8 bytes follow
//	kindInt      the values are decimals: an integer k per cell such that
//	             the value is exactly k / 10^d times the column's scale,
//	             computed as gather computes it. Each k is written as its
//	             difference from a prediction, the previous k (delta) or the
//	             previous k plus the previous delta (delta of delta), in a
//	             bit stream: 0 for no difference, else 1, six bits of
//	             length n and the zig-zag difference without its leading
//	             one (n-1 bits); length 0 marks an absent cell.
//	kindXOR      anything else: a Prometheus XOR chunk whose timestamps
//	             are the cell indexes (one bit per cell).
//
// The high bits of the first byte hold d and, for kindInt, whether the
// prediction is delta of delta. Counters are integers (d = 0) and the
// simulator's gauges have three decimals, so most series are kindInt, whose
// cost per cell is about the number of significant bits of the change: a
// busy byte counter still needs five bytes, an idle one a bit. A value that
// is not exactly such a decimal (a NaN from the source, a computed float)
// sends its series to kindXOR; the encoder checks every value, so decoding
// gives back the stored bits exactly.
const (
	kindAbsent byte = iota
	kindConst
	kindConstRaw
	kindInt
	kindXOR

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
// source value: the same operations in the same order, so equal bits.
func fromDecimal(k int64, d int, scale float64) float64 {
	f := float64(k)
	if d > 0 {
		f /= pow10[d]
	}
	if scale != 1 && scale != 0 {
		f *= scale
	}
	return f
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
	for i := 0; i < len(cells); i++ {
		v := cells[i]
		if isAbsent(v) {
			ks = append(ks, noK)
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

// residuals calls f with the difference of each present k from its
// prediction, in order; absent cells are skipped (f gets ok false).
func residuals(ks []int64, dod bool, f func(r int64, ok bool)) {
	var prevK, prevDelta int64
	count := 0
	for _, k := range ks {
		if k == noK {
			f(0, false)
			continue
		}
		delta := k - prevK
		var pred int64
		if dod && count >= 2 {
			pred = prevDelta
		}
		f(delta-pred, true)
		if count >= 1 {
			prevDelta = delta
		}
		prevK = k
		count++
	}
}

func residualBits(r int64) int {
	if r == 0 {
		return 1
	}
	return 6 + bits.Len64(zigzag(r))
}

// encodeSeries appends the encoding of one series' cells to dst. ks is
// scratch space, returned for reuse.
func encodeSeries(dst []byte, cells []float64, scale float64, ks []int64) ([]byte, []int64) {
	present, same := 0, true
	for _, v := range cells {
		if !isAbsent(v) {
			present++
		}
		same = same && math.Float64bits(v) == math.Float64bits(cells[0])
	}
	if present == 0 {
		return append(dst, kindAbsent), ks
	}
	ks, d, ok := decimals(cells, scale, ks)
	switch {
	case same && ok:
		dst = append(dst, kindConst|byte(d)<<dShift)
		return binary.AppendUvarint(dst, zigzag(ks[0])), ks
	case same:
		dst = append(dst, kindConstRaw)
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(cells[0])), ks
	case !ok:
		return encodeXOR(dst, cells), ks
	}
	// Delta or delta of delta, whichever is shorter for this series.
	costs := [2]int{}
	for i, dod := range []bool{false, true} {
		residuals(ks, dod, func(r int64, ok bool) {
			if ok {
				costs[i] += residualBits(r)
			} else {
				costs[i] += 7
			}
		})
	}
	dod := costs[1] < costs[0]
	mode := kindInt | byte(d)<<dShift
	if dod {
		mode |= dodFlag
	}
	w := bitWriter{buf: append(dst, mode)}
	residuals(ks, dod, func(r int64, ok bool) {
		switch {
		case !ok:
			w.write(1<<6, 7) // 1, length 0
		case r == 0:
			w.write(0, 1)
		default:
			z := zigzag(r)
			n := uint(bits.Len64(z))
			w.write(1<<6|uint64(n), 7)
			w.write(z, n-1) // the leading one is implied
		}
	})
	return w.flush(), ks
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
	acc uint64 // the last n bits are pending
	n   uint
}

// write appends the low nbits (at most 64) of v.
func (w *bitWriter) write(v uint64, nbits uint) {
	if nbits > 32 {
		w.write(v>>32, nbits-32)
		nbits = 32
	}
	w.acc = w.acc<<nbits | v&(1<<nbits-1)
	w.n += nbits
	for w.n >= 8 {
		w.n -= 8
		w.buf = append(w.buf, byte(w.acc>>w.n))
	}
}

func (w *bitWriter) flush() []byte {
	if w.n > 0 {
		w.buf = append(w.buf, byte(w.acc<<(8-w.n)))
		w.n = 0
	}
	return w.buf
}

// bitReader reads what bitWriter wrote; past the end it reads zeros.
type bitReader struct {
	b   []byte
	acc uint64 // the last n bits are unread
	n   uint
}

func (r *bitReader) read(nbits uint) uint64 {
	if nbits > 32 {
		hi := r.read(nbits - 32)
		return hi<<32 | r.read(32)
	}
	for r.n < nbits {
		var c byte
		if len(r.b) > 0 {
			c, r.b = r.b[0], r.b[1:]
		}
		r.acc = r.acc<<8 | uint64(c)
		r.n += 8
	}
	r.n -= nbits
	return r.acc >> r.n & (1<<nbits - 1)
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
	bits     bitReader
	k, delta int64
	count    int
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
	case kindInt:
		dec.bits = bitReader{b: b}
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
		var r int64
		if dec.bits.read(1) == 1 {
			n := uint(dec.bits.read(6))
			if n == 0 {
				dec.v = absent
				return
			}
			r = unzigzag(1<<(n-1) | dec.bits.read(n-1))
		}
		var pred int64
		if dec.dod && dec.count >= 2 {
			pred = dec.delta
		}
		delta := pred + r
		if dec.count >= 1 {
			dec.delta = delta
		}
		dec.k += delta
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
