package queryapi

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/jsonutil"

	"github.com/fabrictelemetry/aggregator/internal/historytest"
)

// prometheusCodec is Prometheus's own JSON encoding of the API's answers:
// jsoniter configured as web/api/v1.JSONCodec configures it, with the
// encoders of web/api/v1/json_codec.go (v0.316.0, copied below as they are:
// importing web/api/v1 would pull in all of Prometheus's server) writing
// numbers with util/jsonutil. It is the oracle of the encoder's bytes.
var prometheusCodec = func() jsoniter.API {
	never := func(unsafe.Pointer) bool { return false }
	jsoniter.RegisterTypeEncoderFunc("promql.Vector", func(ptr unsafe.Pointer, stream *jsoniter.Stream) {
		v := *(*promql.Vector)(ptr)
		stream.WriteArrayStart()
		for i, s := range v {
			promSample(s, stream)
			if i != len(v)-1 {
				stream.WriteMore()
			}
		}
		stream.WriteArrayEnd()
	}, never)
	jsoniter.RegisterTypeEncoderFunc("promql.Matrix", func(ptr unsafe.Pointer, stream *jsoniter.Stream) {
		m := *(*promql.Matrix)(ptr)
		stream.WriteArrayStart()
		for i, s := range m {
			promSeries(s, stream)
			if i != len(m)-1 {
				stream.WriteMore()
			}
		}
		stream.WriteArrayEnd()
	}, never)
	return jsoniter.ConfigCompatibleWithStandardLibrary
}()

func promSeries(s promql.Series, stream *jsoniter.Stream) {
	stream.WriteObjectStart()
	stream.WriteObjectField(`metric`)
	promLabels(s.Metric, stream)
	for i, p := range s.Floats {
		stream.WriteMore()
		if i == 0 {
			stream.WriteObjectField(`values`)
			stream.WriteArrayStart()
		}
		stream.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, stream)
		stream.WriteMore()
		jsonutil.MarshalFloat(p.F, stream)
		stream.WriteArrayEnd()
	}
	if len(s.Floats) > 0 {
		stream.WriteArrayEnd()
	}
	for i, p := range s.Histograms {
		stream.WriteMore()
		if i == 0 {
			stream.WriteObjectField(`histograms`)
			stream.WriteArrayStart()
		}
		stream.WriteArrayStart()
		jsonutil.MarshalTimestamp(p.T, stream)
		stream.WriteMore()
		jsonutil.MarshalHistogram(p.H, stream)
		stream.WriteArrayEnd()
	}
	if len(s.Histograms) > 0 {
		stream.WriteArrayEnd()
	}
	stream.WriteObjectEnd()
}

func promSample(s promql.Sample, stream *jsoniter.Stream) {
	stream.WriteObjectStart()
	stream.WriteObjectField(`metric`)
	promLabels(s.Metric, stream)
	stream.WriteMore()
	if s.H == nil {
		stream.WriteObjectField(`value`)
	} else {
		stream.WriteObjectField(`histogram`)
	}
	stream.WriteArrayStart()
	jsonutil.MarshalTimestamp(s.T, stream)
	stream.WriteMore()
	if s.H == nil {
		jsonutil.MarshalFloat(s.F, stream)
	} else {
		jsonutil.MarshalHistogram(s.H, stream)
	}
	stream.WriteArrayEnd()
	stream.WriteObjectEnd()
}

func promLabels(lbls labels.Labels, stream *jsoniter.Stream) {
	stream.WriteObjectStart()
	i := 0
	lbls.Range(func(v labels.Label) {
		if i != 0 {
			stream.WriteMore()
		}
		i++
		stream.WriteString(v.Name)
		stream.WriteRaw(`:`)
		stream.WriteString(v.Value)
	})
	stream.WriteObjectEnd()
}

// oddFloats are the values whose formatting differs somewhere: zero and
// negative zero, the 'f'/'e' boundaries at 1e-6 and 1e21, the extremes,
// integers past 2^53, the scaled values of the schema (8.7e-07 s, 0.36139),
// NaN, the staleness marker and the infinities.
var oddFloats = []float64{
	0, math.Copysign(0, -1), 1, -1.5, 0.1, 1.0 / 3, 0.36139, 8.7e-07, 1e-6, 9.999999e-7, -1e-7,
	1e20, 1e21, 9.99e20, -1e21, 1e300, math.MaxFloat64, math.SmallestNonzeroFloat64, 5e-324,
	1 << 53, 1<<53 + 2, 18446744073709551615, 1825815752859,
	math.NaN(), math.Float64frombits(value.StaleNaN), math.Inf(1), math.Inf(-1),
}

// oddTimes are timestamps in milliseconds: whole seconds, one, two and
// three decimals with and without trailing zeros, before 1970, and a time
// in 2262.
var oddTimes = []int64{0, 1, 10, 100, 999, 1000, 1001, 1010, 1100, 1500, 1_700_000_000_000, 1_700_000_000_120,
	1_700_000_000_123, 1_700_000_000_001, -1, -999, -1000, -1500, -1_700_000_000_001, 9_223_372_036_854}

// oddLabels need escaping or are otherwise unusual: quotes, backslashes,
// HTML characters, every kind of control character, non-ASCII, U+2028 and
// U+2029, and an empty value.
var oddLabels = labels.FromStrings(
	"__name__", "fabric_port_transmit_bytes_total",
	"a", `"quoted" \back\slash`,
	"b", "<html> & </html>",
	"c", "line\nfeed\ttab\rreturn\x00nul\x1fus\x7fdel\bbackspace\fformfeed",
	"d", "µs 温度 🔥",
	"e", "sep\u2028arators\u2029",
	"empty", "",
	"node_guid", "0x0002c9030012ab01",
	"port", "17",
	"switch_id", "SW-0001",
)

// encodeBody runs the encoder over a response and returns its bytes.
func encodeBody(t *testing.T, r response, limit int64) ([]byte, error) {
	t.Helper()
	b := newBody(newChunkPool(4), limit)
	defer b.release()
	err := b.response(r)
	var out bytes.Buffer
	if _, werr := b.WriteTo(&out); werr != nil {
		t.Fatal(werr)
	}
	if int64(out.Len()) != b.Len() {
		t.Fatalf("Len %d, wrote %d", b.Len(), out.Len())
	}
	return out.Bytes(), err
}

func queryResponse(v parser.Value) response {
	return response{Status: "success", Data: queryData{ResultType: v.Type(), Result: v}}
}

// testResults are query results with every odd value, time and label, and
// the empty results.
func testResults() map[string]parser.Value {
	var floats []promql.FPoint
	var vec promql.Vector
	for i, f := range oddFloats {
		ts := oddTimes[i%len(oddTimes)]
		floats = append(floats, promql.FPoint{T: ts, F: f})
		vec = append(vec, promql.Sample{Metric: labels.FromStrings("__name__", "x", "i", string(rune('a'+i))), T: ts, F: f})
	}
	var times []promql.FPoint
	for _, ts := range oddTimes {
		times = append(times, promql.FPoint{T: ts, F: 1})
	}
	h := &histogram.FloatHistogram{
		Schema: 0, Count: 21, Sum: 34593.34, ZeroThreshold: 0.25, ZeroCount: 3,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}}, PositiveBuckets: []float64{12, 0, 6},
		NegativeSpans: []histogram.Span{{Offset: 0, Length: 1}}, NegativeBuckets: []float64{1e-9},
	}
	return map[string]parser.Value{
		"matrix": promql.Matrix{
			{Metric: oddLabels, Floats: floats},
			{Metric: labels.FromStrings("__name__", "times"), Floats: times},
			{Metric: labels.EmptyLabels(), Floats: []promql.FPoint{{T: 1, F: 2}}},
			{Metric: labels.FromStrings("only", "histograms"), Histograms: []promql.HPoint{{T: 1500, H: h}, {T: 2500, H: &histogram.FloatHistogram{Count: 0, Sum: math.NaN()}}}},
			{Metric: labels.FromStrings("both", "kinds"), Floats: []promql.FPoint{{T: 1000, F: 1}}, Histograms: []promql.HPoint{{T: 2000, H: h}}},
			{Metric: labels.FromStrings("no", "points")},
		},
		"vector": append(vec,
			promql.Sample{Metric: oddLabels, T: 1_700_000_000_120, F: 42},
			promql.Sample{Metric: labels.FromStrings("h", "1"), T: 1_700_000_000_123, H: h}),
		"empty matrix":  promql.Matrix{},
		"nil matrix":    promql.Matrix(nil),
		"empty vector":  promql.Vector{},
		"nil vector":    promql.Vector(nil),
		"scalar":        promql.Scalar{T: 1_700_000_000_120, V: 1e300},
		"scalar NaN":    promql.Scalar{T: -1500, V: math.NaN()},
		"scalar tiny":   promql.Scalar{T: 1, V: 8.7e-07},
		"scalar inf":    promql.Scalar{T: 0, V: math.Inf(-1)},
		"string":        promql.String{T: 1_700_000_000_001, V: "<fabric> \"ok\"\n\u2028"},
		"string at -1s": promql.String{T: -1000, V: ""},
	}
}

// The answers are byte for byte what Prometheus's own API writes for the
// same values.
func TestEncodeAsPrometheus(t *testing.T) {
	for name, v := range testResults() {
		t.Run(name, func(t *testing.T) {
			for _, r := range []response{
				queryResponse(v),
				{Status: "success", Data: queryData{ResultType: v.Type(), Result: v}, Warnings: []string{"PromQL warning: <w>"}, Infos: []string{"i1", "i2\n"}},
			} {
				got, err := encodeBody(t, r, math.MaxInt64)
				if err != nil {
					t.Fatal(err)
				}
				want, err := prometheusCodec.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("got  %s\nwant %s", got, want)
				}
			}
		})
	}
}

// Where promql's own MarshalJSON (the encoding this API used before)
// writes the same numbers, the answer is byte for byte json.Marshal's; and
// every answer decodes to the same values as json.Marshal's. The encodings
// differ only where Prometheus's API differs from promql's MarshalJSON:
// timestamps keep trailing zeros (1.500, not 1.5), values outside [1e-6,
// 1e21) are written with an exponent, an empty result is [], not null, and
// labels are not HTML-escaped.
func TestEncodeAsMarshalJSON(t *testing.T) {
	fabric := labels.FromStrings("__name__", "fabric_port_transmit_bytes_total", "node_guid", "0x0002c9030012ab01", "port", "17", "switch_id", "SW-0001")
	ordinary := promql.Matrix{{Metric: fabric, Floats: []promql.FPoint{
		{T: 1_700_000_000_123, F: 1825815752859}, {T: 1_700_000_000_001, F: 0.36139}, {T: 1_700_000_000_011, F: -1.5},
		{T: 1, F: math.NaN()}, {T: 2, F: math.Inf(1)}, {T: 3, F: math.Inf(-1)}, {T: 1_700_000_000_000, F: 1e-6}, {T: 5, F: 0},
	}}}
	got, err := encodeBody(t, queryResponse(ordinary), math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := json.Marshal(queryResponse(ordinary)); !bytes.Equal(got, want) {
		t.Errorf("ordinary values:\ngot  %s\nwant %s", got, want)
	}

	for name, v := range testResults() {
		t.Run(name, func(t *testing.T) {
			got, err := encodeBody(t, queryResponse(v), math.MaxInt64)
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(queryResponse(v))
			if err != nil {
				t.Fatal(err)
			}
			if g, w := normalize(t, got), normalize(t, want); g != w {
				t.Errorf("decoded differently:\ngot  %s\nwant %s", g, w)
			}
		})
	}
}

// normalize decodes an answer and writes it again with every number and
// numeric string in one canonical form (and null as []), so that two
// encodings of the same values compare equal.
func normalize(t *testing.T, b []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var canon func(any) any
	canon = func(v any) any {
		switch v := v.(type) {
		case nil:
			return []any{}
		case json.Number:
			return canonNumber(t, string(v))
		case string:
			if _, err := strconv.ParseFloat(v, 64); err == nil {
				return canonNumber(t, v)
			}
			return v
		case []any:
			for i := range v {
				v[i] = canon(v[i])
			}
			return v
		case map[string]any:
			for k := range v {
				v[k] = canon(v[k])
			}
			return v
		}
		return v
	}
	out, err := json.Marshal(canon(v))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func canonNumber(t *testing.T, s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return "number " + strconv.FormatFloat(f, 'g', -1, 64)
}

// Prometheus writes a label with invalid UTF-8 as it is, which is not JSON
// (PromQL can make one: label_replace(x, "l", "\xff", "", "")); the encoder
// writes U+FFFD for each bad byte, as encoding/json does.
func TestEncodeInvalidUTF8Label(t *testing.T) {
	v := promql.Vector{{Metric: labels.FromStrings("l", "bad\xffutf8\xc3", "\xfe", "x"), T: 1000, F: 1}}
	got, err := encodeBody(t, queryResponse(v), math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"l":"bad\ufffdutf8\ufffd","\ufffd":"x"},"value":[1,"1"]}]}}`
	if string(got) != want || !json.Valid(got) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// The encoder escapes strings exactly as encoding/json does, and labels
// as Prometheus's codec does (for valid UTF-8), for every byte and for the
// runes either treats specially.
func TestAppendStrings(t *testing.T) {
	cases := []string{"", "plain", "<>&", "\u2028\u2029", "\xff", "a\xc3", "\xed\xa0\x80", "\xef\xbf\xbd", "🔥µ", strings.Repeat("x", 100)}
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "a"+string([]byte{byte(c)})+"b")
	}
	for _, s := range cases {
		checkAppendStrings(t, s)
	}
}

func checkAppendStrings(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendString(nil, s); !bytes.Equal(got, want) {
		t.Errorf("appendString(%q): got %s, want %s", s, got, want)
	}
	label := appendLabel(nil, s)
	if !utf8.ValidString(s) {
		if !json.Valid(label) {
			t.Errorf("appendLabel(%q): %s is not JSON", s, label)
		}
		return
	}
	stream := prometheusCodec.BorrowStream(nil)
	defer prometheusCodec.ReturnStream(stream)
	stream.WriteString(s)
	if !bytes.Equal(label, stream.Buffer()) {
		t.Errorf("appendLabel(%q): got %s, want %s", s, label, stream.Buffer())
	}
}

func FuzzAppendStrings(f *testing.F) {
	for _, s := range []string{"", "SW-01", "<\u2028>", "\xff\x00\"\\", "温度\b\f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkAppendStrings(t, s)
	})
}

// An answer is built once: encoding allocates its chunks and little else,
// where json.Marshal builds it and copies every value's MarshalJSON output
// again.
func TestEncodeAllocatesOnce(t *testing.T) {
	r := queryResponse(bigMatrix(5000)) // 500,000 points, about 14 MB
	var size int64
	_, allocated := heldBy(func() any {
		b := newBody(newChunkPool(0), math.MaxInt64)
		if err := b.response(r); err != nil {
			t.Fatal(err)
		}
		size = b.Len()
		return b
	})
	_, marshal := heldBy(func() any {
		j, _ := json.Marshal(r)
		return j
	})
	t.Logf("%d bytes: the encoder allocated %d, json.Marshal %d", size, allocated, marshal)
	if limit := size + size/20 + chunkSize; int64(allocated) > limit {
		t.Errorf("encoding %d bytes allocated %d, more than %d", size, allocated, limit)
	}
}

// BenchmarkEncodeMatrix encodes a range query's answer (100 points per
// series) with the API's encoder and with json.Marshal of the promql
// values, which the API used before.
func BenchmarkEncodeMatrix(b *testing.B) {
	r := queryResponse(bigMatrix(historytest.BenchSize(5000, 50)))
	pool := newChunkPool(pooledChunks)
	b.Run("chunked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			body := newBody(pool, math.MaxInt64)
			if err := body.response(r); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(body.Len())
			body.release()
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			j, err := json.Marshal(r)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(j)))
		}
	})
}
