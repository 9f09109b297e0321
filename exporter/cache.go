package exporter

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// A snapshot never changes, so its exposition is rendered at most once per
// format, on the first scrape that asks for that format (a format no scraper
// uses costs nothing), and then served as bytes to every scrape until the
// next snapshot replaces it.

// encoding is one way the data part of /metrics is served.
type encoding int

const (
	encText encoding = iota
	encOpenMetrics
	numEncodings
)

// exposition is the rendered data part of /metrics for one snapshot.
type exposition struct {
	snap  *snapshot.Snapshot
	plain [numEncodings]lazy[[]byte]
	gzip  [numEncodings]lazy[gzipPart]
	// onRender is told how many series a rendering skipped.
	onRender func(openMetrics bool, skipped int)
}

// lazy is a value computed once, by the first caller that needs it.
type lazy[T any] struct {
	once sync.Once
	v    T
}

func (l *lazy[T]) get(f func() T) T {
	l.once.Do(func() { l.v = f() })
	return l.v
}

// gzipPart is the data part compressed once: a gzip header and deflate blocks
// that end byte-aligned and not final, so a response can carry on the same
// deflate stream with the small self-metrics part and close it. The CRC and
// length let it write a correct gzip trailer for the whole body.
type gzipPart struct {
	prefix []byte
	crc    uint32
	size   uint32 // length of the uncompressed data, mod 2^32 as in the trailer
}

func (x *exposition) body(enc encoding) []byte {
	return x.plain[enc].get(func() []byte {
		b, skipped := renderSnapshot(x.snap, enc == encOpenMetrics)
		if x.onRender != nil {
			x.onRender(enc == encOpenMetrics, skipped)
		}
		return b
	})
}

func (x *exposition) gzipped(enc encoding) gzipPart {
	return x.gzip[enc].get(func() gzipPart {
		data := x.body(enc)
		var buf bytes.Buffer
		buf.Grow(len(data)/8 + 64)
		buf.Write(gzipHeader)
		// BestSpeed: about 4x faster than the default level at 1M series for
		// some 15% more bytes, and the first gzip scrape of a snapshot waits for it.
		fw, _ := flate.NewWriter(&buf, flate.BestSpeed) // err only for a bad level
		_, _ = fw.Write(data)                           // bytes.Buffer does not fail
		_ = fw.Flush()                                  // sync flush: byte-aligned, stream left open
		return gzipPart{prefix: buf.Bytes(), crc: crc32.ChecksumIEEE(data), size: uint32(len(data))}
	})
}

// gzipHeader is a minimal gzip member header (RFC 1952): deflate, no flags,
// no modification time, unknown OS, as compress/gzip writes by default.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}

var flateWriters = sync.Pool{New: func() any {
	fw, _ := flate.NewWriter(io.Discard, flate.DefaultCompression)
	return fw
}}

// writeGzip writes one gzip stream holding part's data followed by tail.
func writeGzip(w io.Writer, part gzipPart, tail []byte) error {
	if _, err := w.Write(part.prefix); err != nil {
		return err
	}
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
	binary.LittleEndian.PutUint32(trailer[:4], crc32.Update(part.crc, crc32.IEEETable, tail))
	binary.LittleEndian.PutUint32(trailer[4:], part.size+uint32(len(tail)))
	_, err := w.Write(trailer[:])
	return err
}

// expositionCache holds the exposition of the store's latest snapshot.
type expositionCache struct {
	store    *snapshot.Store
	current  atomic.Pointer[exposition]
	onRender func(openMetrics bool, skipped int)
}

// get returns the exposition of the store's current snapshot, nil before the
// first. The cached exposition is loaded before the store, and the store only
// moves forward, so a scrape that lost a race never puts an older snapshot
// back; the replaced exposition is garbage once its last scrape ends.
func (c *expositionCache) get() *exposition {
	for {
		cur := c.current.Load()
		snap := c.store.Load()
		switch {
		case snap == nil:
			return nil
		case cur != nil && cur.snap == snap:
			return cur
		}
		next := &exposition{snap: snap, onRender: c.onRender}
		if c.current.CompareAndSwap(cur, next) {
			return next
		}
	}
}
