package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/tsdb/encoding"

	"github.com/fabrictelemetry/aggregator/schema"
)

// The files of a history kept on disk (see Persist), all in its directory:
//
//	<seq>.layout  a layout: the series table of the runs that name its seq
//	<seq>.run     a sealed run: its layout's seq, its blocks' cells and
//	              times, and its encoded data, as the history held them
//	<seq>.cut     the newest time kept of run <seq>, after a rewind dropped
//	              its later blocks
//
// seq is one decimal sequence for the whole directory (seqDigits digits),
// so the runs' order is the order they were written in. A file is written
// whole, then synced, then renamed into place, and never changed after:
// a cut file is replaced the same way, the others are only deleted. Every
// file is a header and a payload:
//
//	magic     "FABRICHIST"
//	version   one byte, fileVersion
//	kind      one byte: 'L', 'R' or 'C'
//	length    eight bytes, big endian: the payload's
//	checksum  four bytes, big endian: CRC32C (Castagnoli) of the payload
//
// Payloads are uvarints (u), signed varints (v), strings as a length and
// bytes (s), and float64 bits as eight bytes, big endian (f):
//
//	layout  u columns; per column: s source column, s metric name, s type,
//	        f scale, s help, one byte known (1) or derived (0);
//	        u label names, s each; u rows; u distinct label values, s each;
//	        per row and label name, u the index of its value;
//	        per column rank, u the column; per row rank, u the row
//	run     u layout seq; u cells; u blocks; per block u its cell (the
//	        first, then the gap after the previous one's, less one) and v
//	        its time in ms (the first, then the difference); u series;
//	        then the encoded data to the end (see encoded)
//	cut     u run seq; v the newest time kept, in ms
const (
	fileMagic   = "FABRICHIST"
	fileVersion = 1
	headerBytes = len(fileMagic) + 1 + 1 + 8 + 4
	seqDigits   = 10

	kindLayoutFile byte = 'L'
	kindRunFile    byte = 'R'
	kindCutFile    byte = 'C'

	extLayout = ".layout"
	extRun    = ".run"
	extCut    = ".cut"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fileName is the name of file seq with extension ext.
func fileName(seq uint64, ext string) string {
	return fmt.Sprintf("%0*d%s", seqDigits, seq, ext)
}

// parseFileName returns the seq and extension of a history file's name.
func parseFileName(name string) (seq uint64, ext string, ok bool) {
	ext = filepath.Ext(name)
	switch ext {
	case extLayout, extRun, extCut:
	default:
		return 0, "", false
	}
	digits := strings.TrimSuffix(name, ext)
	if len(digits) != seqDigits {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, ext, err == nil
}

// errVersion is a file of a format version this build does not read.
var errVersion = errors.New("unknown format version")

// header returns a file's header for a payload of n bytes with checksum
// crc.
func header(kind byte, n int, crc uint32) []byte {
	h := make([]byte, 0, headerBytes)
	h = append(h, fileMagic...)
	h = append(h, fileVersion, kind)
	h = binary.BigEndian.AppendUint64(h, uint64(n))
	return binary.BigEndian.AppendUint32(h, crc)
}

// writeFile writes a file of kind whose payload is the concatenation of
// parts, atomically: a temporary file, fsync, rename. The directory is
// synced by the caller, once for all the files of a sync.
func writeFile(path string, kind byte, parts ...[]byte) (int, error) {
	n, crc := 0, uint32(0)
	for _, p := range parts {
		n += len(p)
		crc = crc32.Update(crc, castagnoli, p)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("creating temporary file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	for _, p := range append([][]byte{header(kind, n, crc)}, parts...) {
		if _, err := tmp.Write(p); err != nil {
			tmp.Close()
			return 0, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("closing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, fmt.Errorf("renaming %s: %w", path, err)
	}
	return headerBytes + n, nil
}

// readFile returns the payload of a file of kind, checked whole: a file of
// another version is errVersion, a truncated or corrupt one an error that
// says so.
func readFile(path string, kind byte) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < headerBytes || !bytes.Equal(data[:len(fileMagic)], []byte(fileMagic)) {
		return nil, errors.New("not a history file, or truncated before its header")
	}
	h := data[len(fileMagic):headerBytes]
	switch {
	case h[0] != fileVersion:
		return nil, fmt.Errorf("%w %d (this build reads %d)", errVersion, h[0], fileVersion)
	case h[1] != kind:
		return nil, fmt.Errorf("a file of kind %q where %q was expected", h[1], kind)
	}
	n, crc := binary.BigEndian.Uint64(h[2:]), binary.BigEndian.Uint32(h[10:])
	payload := data[headerBytes:]
	switch {
	case uint64(len(payload)) < n:
		return nil, fmt.Errorf("truncated: %d of %d payload bytes", len(payload), n)
	case uint64(len(payload)) > n:
		return nil, fmt.Errorf("%d bytes after the payload", uint64(len(payload))-n)
	case crc32.Checksum(payload, castagnoli) != crc:
		return nil, errors.New("corrupt (checksum mismatch)")
	}
	return payload, nil
}

// encodeLayout returns the payload of l's file.
func encodeLayout(l *layout) []byte {
	var b []byte
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	b = binary.AppendUvarint(b, uint64(len(l.metrics)))
	for _, m := range l.metrics {
		str(m.Column)
		str(m.Name)
		str(string(m.Type))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.Scale))
		str(m.Help)
		known := byte(0)
		if m.Known {
			known = 1
		}
		b = append(b, known)
	}
	b = binary.AppendUvarint(b, uint64(len(l.labelNames)))
	for _, n := range l.labelNames {
		str(n)
	}
	b = binary.AppendUvarint(b, uint64(l.numRows))
	index := map[string]uint64{}
	var values []string
	for _, v := range l.rowValues {
		if _, ok := index[v]; !ok {
			index[v] = uint64(len(values))
			values = append(values, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(values)))
	for _, v := range values {
		str(v)
	}
	for _, v := range l.rowValues {
		b = binary.AppendUvarint(b, index[v])
	}
	for _, c := range l.colOrder {
		b = binary.AppendUvarint(b, uint64(c))
	}
	for _, r := range l.rowOrder {
		b = binary.AppendUvarint(b, uint64(r))
	}
	return b
}

// payloadReader reads a payload: Prometheus's TSDB decoding buffer, which
// remembers the first error, with the bounds this format checks.
type payloadReader struct{ encoding.Decbuf }

func newPayloadReader(payload []byte) *payloadReader {
	return &payloadReader{encoding.Decbuf{B: payload}}
}

func (r *payloadReader) fail(what string) {
	if r.E == nil {
		r.E = errors.New(what)
	}
	r.B = nil
}

// err returns the first error, nil if none.
func (r *payloadReader) err() error {
	if r.E == nil {
		return nil
	}
	return fmt.Errorf("malformed payload: %w", r.E)
}

// count reads a uvarint that counts items of at least min bytes each in
// what is left, so that a corrupt count cannot make a huge allocation.
func (r *payloadReader) count(minBytes int) int {
	n := r.Uvarint64()
	if n > uint64(len(r.B)/max(minBytes, 1)+1) {
		r.fail("count beyond the payload")
		return 0
	}
	return int(n)
}

// index reads a uvarint below n.
func (r *payloadReader) index(n int) int {
	v := r.Uvarint64()
	if v >= uint64(n) {
		r.fail("index out of range")
		return 0
	}
	return int(v)
}

// decodeLayout rebuilds a layout from its file's payload: the same series
// in the same id order, so that its runs read as they were written.
func decodeLayout(payload []byte) (*layout, error) {
	r := newPayloadReader(payload)
	metrics := make([]schema.Metric, r.count(12))
	for i := range metrics {
		m := &metrics[i]
		m.Column, m.Name, m.Type = r.UvarintStr(), r.UvarintStr(), schema.Type(r.UvarintStr())
		m.Scale, m.Help = r.Be64Float64(), r.UvarintStr()
		m.Known = r.Byte() == 1
	}
	l := &layout{labelNames: make([]string, r.count(1))}
	for i := range l.labelNames {
		l.labelNames[i] = r.UvarintStr()
	}
	l.setColumns(metrics)
	l.numRows = r.count(len(l.labelNames) + 1) // its values and its rank
	values := make([]string, r.count(1))
	for i := range values {
		values[i] = r.UvarintStr()
	}
	l.rowValues = make([]string, l.numRows*len(l.labelNames))
	for i := range l.rowValues {
		j := r.index(len(values))
		if err := r.err(); err != nil {
			return nil, err
		}
		l.rowValues[i] = values[j]
	}
	l.colOrder = readPermutation(r, len(metrics))
	l.rowOrder = readPermutation(r, l.numRows)
	if err := r.err(); err != nil {
		return nil, err
	}
	if len(r.B) > 0 {
		return nil, fmt.Errorf("malformed payload: %d bytes after the layout", len(r.B))
	}
	l.finish()
	return l, nil
}

// readPermutation reads n distinct indexes below n.
func readPermutation(r *payloadReader, n int) []int32 {
	p := make([]int32, n)
	seen := make([]bool, n)
	for i := range p {
		j := r.index(n)
		if r.E != nil {
			return nil
		}
		if seen[j] {
			r.fail("not a permutation")
			return nil
		}
		seen[j], p[i] = true, int32(j)
	}
	return p
}

// runFile is a run as its file holds it: the blocks of the run the history
// held when it was written, each a cell of the run and its time.
type runFile struct {
	layout uint64 // the layout file's seq
	cells  int
	idx    []int
	times  []int64
	series int
	data   []byte
}

// encodeRunHead returns the payload of a run's file up to its data, which
// follows it: the run's blocks are those of blocks, in time order.
func encodeRunHead(layoutSeq uint64, r *encoded, blocks []*block) []byte {
	b := binary.AppendUvarint(nil, layoutSeq)
	b = binary.AppendUvarint(b, uint64(r.cells))
	b = binary.AppendUvarint(b, uint64(len(blocks)))
	prevIdx, prevT := -1, int64(0)
	for _, bl := range blocks {
		b = binary.AppendUvarint(b, uint64(bl.idx-prevIdx-1))
		b = binary.AppendVarint(b, bl.t-prevT)
		prevIdx, prevT = bl.idx, bl.t
	}
	return binary.AppendUvarint(b, uint64(blocks[0].lay.numSeries()))
}

// decodeRun reads a run file's payload; its data stays in payload.
func decodeRun(payload []byte) (*runFile, error) {
	r := newPayloadReader(payload)
	f := &runFile{layout: r.Uvarint64(), cells: r.count(0)}
	n := r.count(2)
	f.idx, f.times = make([]int, n), make([]int64, n)
	prevIdx, prevT := -1, int64(0)
	for i := range n {
		gap := r.Uvarint64()
		t := prevT + r.Varint64()
		if gap >= uint64(f.cells) || prevIdx+1+int(gap) >= f.cells || i > 0 && t <= prevT {
			r.fail("blocks out of order")
		}
		if err := r.err(); err != nil {
			return nil, err
		}
		f.idx[i], f.times[i] = prevIdx+1+int(gap), t
		prevIdx, prevT = f.idx[i], t
	}
	f.series = r.count(2) // a length and a byte at least
	if err := r.err(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("malformed payload: a run without blocks")
	}
	f.data = r.B
	return f, nil
}

// seriesOffsets checks that data holds the encodings of n series, each a
// length and at least one byte, to its end, and returns the offsets of
// every seriesGroup-th, as encoded.offs has them.
func seriesOffsets(data []byte, n int) ([]uint32, error) {
	if len(data) > math.MaxUint32 {
		return nil, errors.New("run data over 4 GiB")
	}
	offs := make([]uint32, 0, (n+seriesGroup-1)/seriesGroup)
	pos := 0
	for id := range n {
		if id%seriesGroup == 0 {
			offs = append(offs, uint32(pos))
		}
		l, w := binary.Uvarint(data[pos:])
		if w <= 0 || l == 0 || l > uint64(len(data)-pos-w) {
			return nil, fmt.Errorf("malformed run data at series %d", id)
		}
		if k := data[pos+w] & kindMask; k > kindIntLate {
			return nil, fmt.Errorf("malformed run data: series %d of unknown kind %d", id, k)
		}
		pos += w + int(l)
	}
	if pos != len(data) {
		return nil, fmt.Errorf("malformed run data: %d bytes after %d series", len(data)-pos, n)
	}
	return offs, nil
}

// encodeCut returns the payload of a cut file.
func encodeCut(runSeq uint64, through int64) []byte {
	return binary.AppendVarint(binary.AppendUvarint(nil, runSeq), through)
}

func decodeCut(payload []byte) (runSeq uint64, through int64, err error) {
	r := newPayloadReader(payload)
	runSeq, through = r.Uvarint64(), r.Varint64()
	if r.E == nil && len(r.B) > 0 {
		r.fail("bytes after the cut")
	}
	return runSeq, through, r.err()
}
