package queryapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// The answers of the API are encoded once, into a body of fixed-size chunks
// that is refused as soon as it passes --query.max-response-bytes: the
// process never holds more than the limit for one answer, the chunks never
// have to be copied to grow, and no second copy is made (json.Marshal
// builds the whole answer, then copies every MarshalJSON output of the
// promql values again to check it). Query results are written value by
// value in the byte format of Prometheus's own API (web/api/v1's JSON codec
// and util/jsonutil):
//
//   - timestamps are seconds with up to three decimals, written from the
//     integer milliseconds (1700000000.120, not 1700000000.12);
//   - sample values are strings, in Go's shortest 'f' format, or 'e' below
//     1e-6 and from 1e21 ("8.7e-07", "1e+21"), and "NaN", "+Inf", "-Inf";
//   - an empty vector or matrix is [], never null;
//   - scalars and strings are written as promql's MarshalJSON writes them,
//     which is what Prometheus's codec does with them.
//
// Label names and values are escaped as Prometheus's codec escapes them
// (appendLabel), every other string as encoding/json does, as Prometheus's
// does too.

const (
	// chunkSize is the size of the chunks a body is made of.
	chunkSize = 64 << 10
	// chunkSlack is how close to full a chunk may get before the next
	// value goes to a new one: a point or a label set of the fabric fits
	// in the rest without the chunk being reallocated (a longer one is
	// written all the same, into a reallocated chunk).
	chunkSlack = 1 << 10
	// pooledChunks is how many free chunks the API keeps for the next
	// answers (16 MiB); a larger answer's other chunks go to the garbage
	// collector.
	pooledChunks = 256
)

// errTooLarge is returned by the encoder when an answer passes the limit.
var errTooLarge = errors.New("answer too large")

// chunkPool keeps up to a fixed number of free chunks.
type chunkPool struct{ free chan []byte }

func newChunkPool(n int) *chunkPool { return &chunkPool{free: make(chan []byte, n)} }

func (p *chunkPool) get() []byte {
	select {
	case c := <-p.free:
		return c[:0]
	default:
		return make([]byte, 0, chunkSize)
	}
}

// put keeps c if it is a chunk of the pool's size and the pool has room.
func (p *chunkPool) put(c []byte) {
	if cap(c) != chunkSize {
		return
	}
	select {
	case p.free <- c:
	default:
	}
}

// body is an answer being encoded: full chunks, then the one being filled.
type body struct {
	full  [][]byte
	buf   []byte
	size  int64 // bytes in full
	limit int64
	pool  *chunkPool
}

func newBody(pool *chunkPool, limit int64) *body {
	return &body{buf: pool.get(), limit: limit, pool: pool}
}

// Len is the number of bytes encoded.
func (b *body) Len() int64 { return b.size + int64(len(b.buf)) }

// check starts a new chunk when the current one is nearly full, and returns
// errTooLarge once the body is over its limit. The encoder calls it after
// every point and label set, so it stops within a few bytes of the limit.
func (b *body) check() error {
	if b.Len() > b.limit {
		return errTooLarge
	}
	if len(b.buf) > chunkSize-chunkSlack {
		b.full = append(b.full, b.buf)
		b.size += int64(len(b.buf))
		b.buf = b.pool.get()
	}
	return nil
}

// write appends p chunk by chunk.
func (b *body) write(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), chunkSize-len(b.buf))
		b.buf = append(b.buf, p[:n]...)
		p = p[n:]
		if err := b.check(); err != nil {
			return err
		}
	}
	return nil
}

// WriteTo writes the body to w.
func (b *body) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, c := range append(b.full, b.buf) {
		m, err := w.Write(c)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// release gives the chunks back to the pool; the body is empty afterwards.
func (b *body) release() {
	for _, c := range b.full {
		b.pool.put(c)
	}
	b.pool.put(b.buf)
	b.full, b.buf, b.size = nil, nil, 0
}

// response encodes Prometheus's envelope, with the keys json.Marshal of
// the response struct would write. A query's data is streamed; any other
// endpoint's data is small and goes through encoding/json.
func (b *body) response(r response) error {
	b.buf = append(b.buf, `{"status":`...)
	b.buf = appendString(b.buf, r.Status)
	if r.Data != nil {
		b.buf = append(b.buf, `,"data":`...)
		if err := b.data(r.Data); err != nil {
			return err
		}
	}
	if r.ErrorType != "" {
		b.buf = append(b.buf, `,"errorType":`...)
		b.buf = appendString(b.buf, r.ErrorType)
	}
	if r.Error != "" {
		b.buf = append(b.buf, `,"error":`...)
		b.buf = appendString(b.buf, r.Error)
	}
	b.strings("warnings", r.Warnings)
	b.strings("infos", r.Infos)
	b.buf = append(b.buf, '}')
	return b.check()
}

func (b *body) data(data any) error {
	d, ok := data.(queryData)
	if !ok {
		j, err := json.Marshal(data)
		if err != nil {
			return err
		}
		return b.write(j)
	}
	b.buf = append(b.buf, `{"resultType":`...)
	b.buf = appendString(b.buf, string(d.ResultType))
	b.buf = append(b.buf, `,"result":`...)
	if err := b.value(d.Result); err != nil {
		return err
	}
	b.buf = append(b.buf, '}')
	return nil
}

func (b *body) strings(key string, ss []string) {
	if len(ss) == 0 {
		return
	}
	b.buf = append(b.buf, ',', '"')
	b.buf = append(b.buf, key...)
	b.buf = append(b.buf, '"', ':', '[')
	for i, s := range ss {
		if i > 0 {
			b.buf = append(b.buf, ',')
		}
		b.buf = appendString(b.buf, s)
	}
	b.buf = append(b.buf, ']')
}

func (b *body) value(v parser.Value) error {
	switch v := v.(type) {
	case promql.Matrix:
		return b.matrix(v)
	case promql.Vector:
		return b.vector(v)
	case promql.Scalar:
		b.buf = append(b.buf, '[')
		b.buf = appendJSONFloat(b.buf, float64(v.T)/1000)
		b.buf = append(b.buf, ',', '"')
		b.buf = strconv.AppendFloat(b.buf, v.V, 'f', -1, 64)
		b.buf = append(b.buf, '"', ']')
		return nil
	case promql.String:
		b.buf = append(b.buf, '[')
		b.buf = appendJSONFloat(b.buf, float64(v.T)/1000)
		b.buf = append(b.buf, ',')
		b.buf = appendString(b.buf, v.V)
		b.buf = append(b.buf, ']')
		return nil
	}
	return fmt.Errorf("encoding a %T: not a query result", v)
}

func (b *body) matrix(m promql.Matrix) error {
	b.buf = append(b.buf, '[')
	for i, s := range m {
		if i > 0 {
			b.buf = append(b.buf, ',')
		}
		b.buf = append(b.buf, `{"metric":`...)
		b.buf = appendLabels(b.buf, s.Metric)
		if err := b.check(); err != nil {
			return err
		}
		if len(s.Floats) > 0 {
			b.buf = append(b.buf, `,"values":[`...)
			for j, p := range s.Floats {
				if j > 0 {
					b.buf = append(b.buf, ',')
				}
				b.buf = append(b.buf, '[')
				b.buf = appendTimestamp(b.buf, p.T)
				b.buf = append(b.buf, ',')
				b.buf = appendFloat(b.buf, p.F)
				b.buf = append(b.buf, ']')
				if err := b.check(); err != nil {
					return err
				}
			}
			b.buf = append(b.buf, ']')
		}
		if len(s.Histograms) > 0 {
			b.buf = append(b.buf, `,"histograms":[`...)
			for j, p := range s.Histograms {
				if j > 0 {
					b.buf = append(b.buf, ',')
				}
				b.buf = append(b.buf, '[')
				b.buf = appendTimestamp(b.buf, p.T)
				b.buf = append(b.buf, ',')
				b.buf = appendHistogram(b.buf, p.H)
				b.buf = append(b.buf, ']')
				if err := b.check(); err != nil {
					return err
				}
			}
			b.buf = append(b.buf, ']')
		}
		b.buf = append(b.buf, '}')
	}
	b.buf = append(b.buf, ']')
	return b.check()
}

func (b *body) vector(v promql.Vector) error {
	b.buf = append(b.buf, '[')
	for i, s := range v {
		if i > 0 {
			b.buf = append(b.buf, ',')
		}
		b.buf = append(b.buf, `{"metric":`...)
		b.buf = appendLabels(b.buf, s.Metric)
		if s.H == nil {
			b.buf = append(b.buf, `,"value":[`...)
		} else {
			b.buf = append(b.buf, `,"histogram":[`...)
		}
		b.buf = appendTimestamp(b.buf, s.T)
		b.buf = append(b.buf, ',')
		if s.H == nil {
			b.buf = appendFloat(b.buf, s.F)
		} else {
			b.buf = appendHistogram(b.buf, s.H)
		}
		b.buf = append(b.buf, ']', '}')
		if err := b.check(); err != nil {
			return err
		}
	}
	b.buf = append(b.buf, ']')
	return b.check()
}

// appendLabels writes a label set as a JSON object, in label order.
func appendLabels(dst []byte, ls labels.Labels) []byte {
	dst = append(dst, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendLabel(dst, l.Name)
		dst = append(dst, ':')
		dst = appendLabel(dst, l.Value)
	})
	return append(dst, '}')
}

// appendTimestamp writes milliseconds as seconds, as jsonutil.MarshalTimestamp.
func appendTimestamp(dst []byte, t int64) []byte {
	if t < 0 {
		dst = append(dst, '-')
		t = -t
	}
	dst = strconv.AppendInt(dst, t/1000, 10)
	if fraction := t % 1000; fraction != 0 {
		dst = append(dst, '.')
		if fraction < 100 {
			dst = append(dst, '0')
		}
		if fraction < 10 {
			dst = append(dst, '0')
		}
		dst = strconv.AppendInt(dst, fraction, 10)
	}
	return dst
}

// appendFloat writes a sample value as a JSON string, as
// jsonutil.MarshalFloat: NaN and ±Inf are representable.
func appendFloat(dst []byte, f float64) []byte {
	dst = append(dst, '"')
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	return append(dst, '"')
}

// appendJSONFloat writes a finite float as a JSON number, as encoding/json
// does (promql's MarshalJSON writes scalar and string times so).
func appendJSONFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if n := len(dst); format == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1] // e-07 → e-7
		dst = dst[:n-1]
	}
	return dst
}

// appendHistogram writes a native histogram as jsonutil.MarshalHistogram:
// count, sum, and the buckets with a count, each as [boundaries, lower,
// upper, count], boundaries 0 (upper inclusive), 1 (lower inclusive), 2
// (neither) or 3 (both).
func appendHistogram(dst []byte, h *histogram.FloatHistogram) []byte {
	dst = append(dst, `{"count":`...)
	dst = appendFloat(dst, h.Count)
	dst = append(dst, `,"sum":`...)
	dst = appendFloat(dst, h.Sum)
	found := false
	for it := h.AllBucketIterator(); it.Next(); {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		if found {
			dst = append(dst, ',')
		} else {
			dst = append(dst, `,"buckets":[`...)
			found = true
		}
		boundaries := 2
		switch {
		case bucket.LowerInclusive && bucket.UpperInclusive:
			boundaries = 3
		case bucket.LowerInclusive:
			boundaries = 1
		case bucket.UpperInclusive:
			boundaries = 0
		}
		dst = append(dst, '[')
		dst = strconv.AppendInt(dst, int64(boundaries), 10)
		dst = append(dst, ',')
		dst = appendFloat(dst, bucket.Lower)
		dst = append(dst, ',')
		dst = appendFloat(dst, bucket.Upper)
		dst = append(dst, ',')
		dst = appendFloat(dst, bucket.Count)
		dst = append(dst, ']')
	}
	if found {
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string exactly as encoding/json does
// (HTML-safe: <, > and & escaped; invalid UTF-8 as \ufffd; U+2028 and
// U+2029 escaped), as Prometheus's codec writes every string but labels.
func appendString(dst []byte, s string) []byte { return appendJSONString(dst, s, true) }

// appendLabel writes a label name or value as Prometheus's codec does
// (jsoniter's Stream.WriteString): only control characters, quotes and
// backslashes are escaped, as \n, \r, \t or \u00XX. Prometheus writes
// invalid UTF-8 as it is, which is not JSON; it is written as \ufffd here.
func appendLabel(dst []byte, s string) []byte { return appendJSONString(dst, s, false) }

func appendJSONString(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!html || c != '<' && c != '>' && c != '&') {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch {
			case c == '\\' || c == '"':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b' && html:
				dst = append(dst, '\\', 'b')
			case c == '\f' && html:
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case html && (r == '\u2028' || r == '\u2029'):
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
