package polllog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// DefaultMaxRecordBytes bounds a record value when the Encoder is not told
// otherwise: half of Kafka's default message.max.bytes (1 MiB), which leaves
// room for the key and the batch overhead.
const DefaultMaxRecordBytes = 512 << 10

// MinRecordBytes is the smallest record bound an Encoder accepts.
const MinRecordBytes = 1 << 10

// Record is one Kafka record of a poll: the partition it must be written
// to, its key and its value.
type Record struct {
	Partition int32
	Key       []byte
	Value     []byte
}

// Encoder turns one source's snapshots into records for a topic of
// Partitions partitions. It holds no state between polls.
type Encoder struct {
	Partitions     int
	MaxRecordBytes int // largest record value; 0 means DefaultMaxRecordBytes
}

// ErrRowTooLarge is returned by Encode when a single row does not fit in
// a record: rows are never split.
var ErrRowTooLarge = errors.New("row larger than the record size")

// Key is the key of a switch's data records: source, "/", switch id. All
// records of one switch, every poll, have it, so they go to one partition.
func Key(source, switchID string) []byte {
	return append(append([]byte(source), '/'), switchID...)
}

// Partition is the partition of a key in a topic of n partitions, computed
// as Kafka's Java client and franz-go's default partitioner do: murmur2 of
// the key, high bit cleared, modulo n. A plain key-partitioned producer
// puts a switch's records where this package expects them.
func Partition(key []byte, n int) int32 {
	return int32(int(murmur2(key)&0x7fffffff) % n)
}

// Encode returns the records of one poll of s: the data records in switch
// order (a switch whose rows exceed the record size split into chunks with
// the same key), then one end marker for every partition, in partition
// order, counting the data records written to it. Writing them in this
// order within one transaction is all a producer has to do.
func (enc *Encoder) Encode(id PollID, s *snapshot.Snapshot) ([]Record, error) {
	p, err := enc.newPoll(id, s)
	if err != nil {
		return nil, err
	}
	for _, sw := range s.Switches() {
		if err := p.addSwitch(sw); err != nil {
			return nil, err
		}
	}
	for part := range enc.Partitions {
		p.addMarker(int32(part))
	}
	return p.records(), nil
}

// newPoll checks the encoder and the poll and starts its records.
func (enc *Encoder) newPoll(id PollID, s *snapshot.Snapshot) (*pollEncoder, error) {
	if enc.Partitions < 1 {
		return nil, fmt.Errorf("a topic of %d partitions", enc.Partitions)
	}
	if id.Source == "" {
		return nil, errors.New("no source name")
	}
	if len(s.Columns()) == 0 {
		return nil, errors.New("a snapshot without metric columns")
	}
	maxBytes := enc.MaxRecordBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxRecordBytes
	}
	if maxBytes < MinRecordBytes {
		return nil, fmt.Errorf("record size %d below the minimum %d", maxBytes, MinRecordBytes)
	}
	return &pollEncoder{enc: enc, id: id, snap: s, maxBytes: maxBytes, counts: make([]int, enc.Partitions)}, nil
}

// pollEncoder writes every record of a poll into one buffer and slices it
// at the end: one allocation that grows, instead of one per record.
type pollEncoder struct {
	enc      *Encoder
	id       PollID
	snap     *snapshot.Snapshot
	maxBytes int
	counts   []int // data records per partition

	w       encoder
	all     []byte
	bounds  []int // end of each record's value in all
	keys    [][]byte
	parts   []int32
	rowBuf  []byte
	rowEnds []int
}

// prefix appends the common fields of a data or end record.
func (p *pollEncoder) prefix(kind Kind) {
	p.w.buf = p.all[len(p.all):]
	p.w.begin(kind, p.id, p.snap.Time(), p.enc.Partitions)
	p.w.strings(p.snap.LabelNames())
	p.w.strings(p.snap.Columns())
}

// emit adds the record in p.w.buf (which extends p.all) to the poll.
func (p *pollEncoder) emit(key []byte, part int32) {
	rec := p.w.finish()
	if n := len(p.all); cap(p.all) >= n+len(rec) && &p.all[:n+len(rec)][n] == &rec[0] {
		p.all = p.all[:n+len(rec)] // written in place, after the last record
	} else {
		p.all = append(p.all, rec...) // the record outgrew p.all's spare room
	}
	p.bounds = append(p.bounds, len(p.all))
	p.keys = append(p.keys, key)
	p.parts = append(p.parts, part)
}

func (p *pollEncoder) addSwitch(sw string) error {
	start, end, _ := p.snap.SwitchRows(sw)
	// The rows first, into a scratch buffer, so that the chunks are known
	// before the first record is written.
	p.rowBuf, p.rowEnds = p.rowBuf[:0], p.rowEnds[:0]
	w := encoder{buf: p.rowBuf}
	for row := start; row < end; row++ {
		for _, l := range p.snap.RowLabels(row)[1:] {
			w.string(l)
		}
		for col := range p.snap.Columns() {
			w.cell(p.snap.Value(row, col))
		}
		p.rowEnds = append(p.rowEnds, len(w.buf))
	}
	p.rowBuf = w.buf

	key := Key(p.id.Source, sw)
	part := Partition(key, p.enc.Partitions)
	p.prefix(KindData)
	p.w.string(sw)
	// chunk, chunks and rows come next: at most 5 bytes each.
	room := p.maxBytes - len(p.w.buf) - 3*binary.MaxVarintLen32
	chunks, err := splitRows(p.rowEnds, room)
	if err != nil {
		return fmt.Errorf("switch %q: %w (%d bytes for one record)", sw, err, p.maxBytes)
	}
	for i, c := range chunks {
		if i > 0 {
			p.prefix(KindData)
			p.w.string(sw)
		}
		p.w.uvarint(uint64(i))
		p.w.uvarint(uint64(len(chunks)))
		p.w.uvarint(uint64(c.rows))
		p.w.buf = append(p.w.buf, p.rowBuf[c.from:c.to]...)
		p.emit(key, part)
		p.counts[part]++
	}
	return nil
}

type chunk struct{ from, to, rows int }

// splitRows cuts rows (given by their end offsets) into runs of at most
// room bytes.
func splitRows(ends []int, room int) ([]chunk, error) {
	var out []chunk
	c := chunk{}
	prev := 0
	for _, end := range ends {
		if end-prev > room {
			return nil, ErrRowTooLarge
		}
		if end-c.from > room {
			out = append(out, c)
			c = chunk{from: c.to}
		}
		c.to, c.rows = end, c.rows+1
		prev = end
	}
	return append(out, c), nil
}

func (p *pollEncoder) addMarker(part int32) {
	p.prefix(KindEnd)
	p.w.uvarint(uint64(part))
	p.w.uvarint(uint64(p.counts[part]))
	p.emit(Key(p.id.Source, ""), part)
}

func (p *pollEncoder) records() []Record {
	out := make([]Record, len(p.bounds))
	from := 0
	for i, to := range p.bounds {
		out[i] = Record{Partition: p.parts[i], Key: p.keys[i], Value: p.all[from:to:to]}
		from = to
	}
	return out
}

// EncodeCheckpoint returns the value of a checkpoint record: the poll a
// publisher committed last, with its snapshot time.
func EncodeCheckpoint(id PollID, snapshotTime time.Time) []byte {
	var w encoder
	w.begin(KindCheckpoint, id, snapshotTime, 0)
	return w.finish()
}

// murmur2 is Kafka's key hash (Utils.murmur2 in the Java client, the same
// as franz-go's default key partitioner), so that partitions agree with any
// key-partitioned Kafka producer.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := binary.LittleEndian.Uint32(b)
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
