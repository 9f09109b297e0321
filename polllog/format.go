// Package polllog is the poll log's record format and the assembly of polls
// from its records, with no Kafka in it: the kafkalog package moves the
// records, this one decides what they mean.
//
// One accepted poll of one source (an immutable snapshot) becomes one data
// record per switch (more when a switch's rows exceed the record size, with
// the same key) and one end-of-poll marker in every partition of the topic,
// saying how many data records of the poll that partition holds. A reader
// feeds every record to an Assembler, which hands back a poll only once the
// markers of every partition have arrived and each partition had exactly the
// records it announced: a poll is applied whole or not at all. The byte
// layout and the rules are documented in docs/poll-log.md.
package polllog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// Version is the format version this package writes and the only one it reads.
// Any change to the layout after the version byte is a new version: a reader
// rejects a version it does not know, it never guesses.
const Version = 1

// Kind says what a record is.
type Kind uint8

const (
	// KindData holds rows of one switch (all of them, or one chunk).
	KindData Kind = 1
	// KindEnd is the end-of-poll marker of one partition.
	KindEnd Kind = 2
	// KindCheckpoint names the last poll a publisher committed; it lives in
	// the lease topic, not the data topic, so that a publisher taking over a
	// source continues its sequence.
	KindCheckpoint Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindEnd:
		return "end"
	case KindCheckpoint:
		return "checkpoint"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// magic starts every record: "FTPL", fabric telemetry poll log.
var magic = [4]byte{'F', 'T', 'P', 'L'}

// Header layout: magic, version, kind, then the CRC-32C of everything after it.
const (
	offVersion = 4
	offKind    = 5
	offCRC     = 6
	headerLen  = 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors a record is rejected with; Decode wraps them with the detail.
var (
	// ErrUnknownVersion is a record of a format version this reader does not know.
	ErrUnknownVersion = errors.New("unknown format version")
	// ErrCorrupt is a record that is not a poll-log record, fails its
	// checksum, is truncated or has inconsistent lengths.
	ErrCorrupt = errors.New("corrupt record")
)

// PollID names one poll of one source. Seq increases with every poll of the
// source, across publishers; the pair is unique in a topic.
type PollID struct {
	Source      string
	Seq         uint64
	PublishTime time.Time // when the publisher wrote the poll, by its clock
}

// Entry is one decoded record. Which fields are set depends on Kind.
type Entry struct {
	Kind Kind
	PollID
	SnapshotTime time.Time // the snapshot's source time
	Partitions   int       // how many partitions the poll was written to

	// Data and End: the identity labels (switch_id first) and metric
	// columns of the poll, the same in every record of it.
	LabelNames []string
	Columns    []string

	// Data: one switch's rows (or one chunk of them).
	Switch       string
	Chunk        int // 0-based
	Chunks       int
	Labels       []string         // row-major, len(LabelNames) per row, switch_id included
	Values       []snapshot.Value // row-major, len(Columns) per row
	RowsInRecord int

	// End: the partition the marker was written for and how many data
	// records of the poll that partition holds.
	Partition   int32
	DataRecords int
}

// Row returns the labels and values of one row of a data entry.
func (e *Entry) Row(i int) (labels []string, values []snapshot.Value) {
	nl, nc := len(e.LabelNames), len(e.Columns)
	return e.Labels[i*nl : (i+1)*nl : (i+1)*nl], e.Values[i*nc : (i+1)*nc : (i+1)*nc]
}

// Encoding of one cell: a kind byte, then the bits.
const (
	cellAbsent = 0
	cellUint   = 1 // uvarint
	cellInt    = 2 // zig-zag varint
	cellFloat  = 3 // 8 bytes, IEEE 754 bits, little endian
)

// Decode checks and decodes one record value. An error wraps
// ErrUnknownVersion or ErrCorrupt; a nil error means every length, count
// and cell of the record was valid.
func Decode(value []byte) (*Entry, error) {
	r, err := parseRecord(value)
	if err != nil {
		return nil, err
	}
	e := &Entry{
		Kind:         r.kind,
		PollID:       PollID{Source: string(r.source), Seq: r.seq, PublishTime: unixTime(r.publishTime)},
		SnapshotTime: unixTime(r.snapTime),
		Partitions:   r.partitions,
	}
	if r.kind == KindData || r.kind == KindEnd {
		e.LabelNames, e.Columns = decodeNames(r.names)
	}
	switch r.kind {
	case KindData:
		e.Switch, e.Chunk, e.Chunks, e.RowsInRecord = string(r.switchID), r.chunk, r.chunks, r.rows
		e.Labels = make([]string, 0, r.rows*r.labelCount)
		e.Values = make([]snapshot.Value, 0, r.rows*r.columnCount)
		d := decoder{buf: r.rowData}
		for range r.rows {
			e.Labels = append(e.Labels, e.Switch)
			for range r.labelCount - 1 {
				e.Labels = append(e.Labels, d.string())
			}
			for range r.columnCount {
				e.Values = append(e.Values, d.cell())
			}
		}
	case KindEnd:
		e.Partition, e.DataRecords = r.partition, r.dataRecords
	}
	return e, nil
}

// record is a checked record whose names and rows are left encoded, as
// slices of its value: parseRecord allocates nothing, and the Assembler
// keeps a data record this way until its poll is complete.
type record struct {
	kind        Kind
	source      []byte
	seq         uint64
	snapTime    int64 // Unix nanoseconds
	publishTime int64 // Unix nanoseconds
	partitions  int

	// Data and End: the label names and the columns, as encoded.
	names       []byte
	labelCount  int
	columnCount int

	// Data.
	switchID      []byte
	chunk, chunks int
	rows          int
	rowData       []byte // the rows, as encoded, every one checked

	// End.
	partition   int32
	dataRecords int
}

// parseRecord checks a record value as Decode does (magic, version,
// checksum, every length, count and cell, nothing after the payload)
// without decoding its strings and cells into anything.
func parseRecord(value []byte) (record, error) {
	if len(value) < headerLen || [4]byte(value[:4]) != magic {
		return record{}, fmt.Errorf("%w: not a poll-log record", ErrCorrupt)
	}
	if v := value[offVersion]; v != Version {
		return record{}, fmt.Errorf("%w %d (this reader knows %d)", ErrUnknownVersion, v, Version)
	}
	if want, got := binary.BigEndian.Uint32(value[offCRC:]), crc32.Checksum(value[headerLen:], castagnoli); want != got {
		return record{}, fmt.Errorf("%w: checksum mismatch (truncated or damaged)", ErrCorrupt)
	}
	r := record{kind: Kind(value[offKind])}
	d := decoder{buf: value[headerLen:]}
	r.source = d.raw()
	r.seq = d.uvarint()
	r.snapTime = d.varint()
	r.publishTime = d.varint()
	r.partitions = d.count(math.MaxInt32)
	switch r.kind {
	case KindData:
		d.names(&r)
		d.rows(&r)
	case KindEnd:
		d.names(&r)
		r.partition = int32(d.count(math.MaxInt32))
		r.dataRecords = d.count(math.MaxInt32)
		if d.err == nil && int(r.partition) >= r.partitions {
			d.fail("marker for partition %d of a %d-partition poll", r.partition, r.partitions)
		}
	case KindCheckpoint:
	default:
		return record{}, fmt.Errorf("%w: unknown record kind %d", ErrCorrupt, value[offKind])
	}
	if d.err == nil && len(d.buf) > 0 {
		d.fail("%d bytes after the %s record", len(d.buf), r.kind)
	}
	if d.err == nil && len(r.source) == 0 {
		d.fail("no source name")
	}
	if d.err == nil && r.kind != KindCheckpoint && r.partitions == 0 {
		d.fail("a poll of no partitions")
	}
	if d.err != nil {
		return record{}, fmt.Errorf("%w: %s record: %w", ErrCorrupt, r.kind, d.err)
	}
	return r, nil
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// names reads the label names and columns, keeping them encoded.
func (d *decoder) names(r *record) {
	start := d.buf
	var first []byte
	r.labelCount = d.count(len(d.buf)) // each string takes at least its length byte
	for i := range r.labelCount {
		if s := d.raw(); i == 0 {
			first = s
		}
	}
	r.columnCount = d.count(len(d.buf))
	for range r.columnCount {
		d.raw()
	}
	if d.err != nil {
		return
	}
	r.names = start[:len(start)-len(d.buf)]
	if r.labelCount == 0 || string(first) != snapshot.SwitchLabel {
		labels, _ := decodeNames(r.names)
		d.fail("label names %q do not start with %s", labels, snapshot.SwitchLabel)
	}
}

// decodeNames decodes what names checked.
func decodeNames(names []byte) (labels, columns []string) {
	d := decoder{buf: names}
	return d.strings(), d.strings()
}

// rows checks the rows of a data record and keeps them encoded.
func (d *decoder) rows(r *record) {
	r.switchID = d.raw()
	r.chunk = d.count(math.MaxInt32)
	r.chunks = d.count(math.MaxInt32)
	rows := d.count(math.MaxInt32)
	if d.err == nil && (r.chunk >= r.chunks || rows == 0) {
		d.fail("chunk %d of %d with %d rows", r.chunk, r.chunks, rows)
	}
	nl, nc := r.labelCount, r.columnCount
	// Every row takes at least one byte per label after the first and one
	// per cell, which bounds what a forged count can make a reader allocate.
	if d.err != nil || rows*max(nl-1+nc, 1) > len(d.buf) {
		d.fail("%d rows of %d labels and %d columns in %d bytes", rows, nl, nc, len(d.buf))
		return
	}
	start := d.buf
	for range rows {
		for range nl - 1 {
			d.raw()
		}
		for range nc {
			d.cell()
		}
		if d.err != nil {
			return
		}
	}
	r.rows = rows
	r.rowData = start[:len(start)-len(d.buf)]
}

// decoder reads the payload; the first error sticks and later reads return
// zero values, so callers check once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.buf) > 0 && d.buf[0] < 0x80 { // one byte: lengths, kinds, small counters
		v := d.buf[0]
		d.buf = d.buf[1:]
		return uint64(v)
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.fail("bad or truncated varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

// count reads a non-negative length or count of at most limit.
func (d *decoder) count(limit int) int {
	v := d.uvarint()
	if v > uint64(limit) {
		d.fail("count %d over %d", v, limit)
		return 0
	}
	return int(v)
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.buf) {
		d.fail("%d bytes announced, %d left", n, len(d.buf))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

// raw reads a string's bytes, without a copy.
func (d *decoder) raw() []byte { return d.bytes(d.count(len(d.buf))) }

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) strings() []string {
	n := d.count(len(d.buf)) // each string takes at least its length byte
	if d.err != nil {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.string()
	}
	return out
}

func (d *decoder) cell() snapshot.Value {
	if d.err != nil || len(d.buf) == 0 {
		d.fail("truncated cell")
		return snapshot.Value{}
	}
	kind := d.buf[0]
	d.buf = d.buf[1:]
	switch kind {
	case cellAbsent:
		return snapshot.Value{}
	case cellUint:
		return snapshot.UintValue(d.uvarint())
	case cellInt:
		i := d.varint()
		if i >= 0 && d.err == nil {
			d.fail("non-negative integer %d stored as a negative one", i)
		}
		return snapshot.IntValue(i)
	case cellFloat:
		b := d.bytes(8)
		if d.err != nil {
			return snapshot.Value{}
		}
		return snapshot.FloatValue(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	}
	d.fail("unknown cell kind %d", kind)
	return snapshot.Value{}
}

// encoder appends a record; begin writes the header, finish the checksum.
type encoder struct{ buf []byte }

func (w *encoder) begin(kind Kind, id PollID, snapTime time.Time, partitions int) {
	w.buf = append(w.buf[:0], magic[:]...)
	w.buf = append(w.buf, Version, byte(kind), 0, 0, 0, 0)
	w.string(id.Source)
	w.uvarint(id.Seq)
	w.varint(snapTime.UnixNano())
	w.varint(id.PublishTime.UnixNano())
	w.uvarint(uint64(partitions))
}

func (w *encoder) finish() []byte {
	binary.BigEndian.PutUint32(w.buf[offCRC:], crc32.Checksum(w.buf[headerLen:], castagnoli))
	return w.buf
}

func (w *encoder) uvarint(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }
func (w *encoder) varint(v int64)   { w.buf = binary.AppendVarint(w.buf, v) }

func (w *encoder) string(s string) {
	w.uvarint(uint64(len(s)))
	w.buf = append(w.buf, s...)
}

func (w *encoder) strings(ss []string) {
	w.uvarint(uint64(len(ss)))
	for _, s := range ss {
		w.string(s)
	}
}

func (w *encoder) cell(v snapshot.Value) {
	switch v.Kind() {
	case snapshot.Uint:
		u, _ := v.Uint64()
		w.buf = append(w.buf, cellUint)
		w.uvarint(u)
	case snapshot.Int:
		i, _ := v.Int64()
		w.buf = append(w.buf, cellInt)
		w.varint(i)
	case snapshot.Float:
		w.buf = append(w.buf, cellFloat)
		w.buf = binary.LittleEndian.AppendUint64(w.buf, math.Float64bits(v.Float64()))
	default:
		w.buf = append(w.buf, cellAbsent)
	}
}
