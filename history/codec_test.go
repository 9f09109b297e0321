package history

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/fabrictelemetry/aggregator/schema"
)

// oneSeries is a run of one series in a one-column layout with the scale.
func oneSeries(cells []float64, scale float64) (*encoded, *layout) {
	lay := &layout{names: []string{"x"}, scales: []float64{scale}, colOrder: []int32{0}, numRows: 1}
	var e encoder
	b := e.encode(nil, cells, scale)
	data := append(binary.AppendUvarint(nil, uint64(len(b))), b...)
	return &encoded{cells: len(cells), data: data, offs: []uint32{0}}, lay
}

// checkRoundTrip decodes every cell forward, then at random places, and
// checks anyIn over every range, against the cells' bits.
func checkRoundTrip(t *testing.T, cells []float64, scale float64) byte {
	t.Helper()
	enc, lay := oneSeries(cells, scale)
	var dec decoder
	for i, want := range cells {
		if got := dec.at(enc, lay, 0, i); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("cells %v scale %v: cell %d decoded %v (%#x), want %v (%#x)", cells, scale, i, got, math.Float64bits(got), want, math.Float64bits(want))
		}
	}
	for _, i := range []int{len(cells) - 1, 0, len(cells) / 2, len(cells) / 3} {
		if got := dec.at(enc, lay, 0, i); math.Float64bits(got) != math.Float64bits(cells[i]) {
			t.Fatalf("cells %v: cell %d out of order decoded %v", cells, i, got)
		}
	}
	for lo := range cells {
		for hi := lo; hi < len(cells) && hi < lo+8; hi++ {
			want := false
			for _, v := range cells[lo : hi+1] {
				want = want || !isAbsent(v)
			}
			if got := dec.anyIn(enc, lay, 0, lo, hi); got != want {
				t.Fatalf("cells %v: anyIn(%d, %d) = %v", cells, lo, hi, got)
			}
		}
	}
	return enc.series(0)[0] & kindMask
}

// scaledAll is what gather stores for source values under a scale.
func scaledAll(scale float64, vs ...float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = v
		if !isAbsent(v) {
			out[i] = schema.Scaled(v, scale)
		}
	}
	return out
}

func TestCodecRoundTrip(t *testing.T) {
	big := float64(1<<53) + 2 // a counter past 2^53, as every third simulated switch has
	for _, tc := range []struct {
		name  string
		cells []float64
		scale float64
		kind  byte
	}{
		{"absent", []float64{absent, absent, absent}, 1, kindAbsent},
		{"one cell", []float64{7}, 1, kindConst},
		{"constant counter", []float64{42, 42, 42, 42}, 1, kindConst},
		{"constant scaled gauge", scaledAll(1e-6, 2.5, 2.5), 1e-6, kindConst},
		{"constant NaN", []float64{math.NaN(), math.NaN()}, 1, kindConstRaw},
		{"counter", []float64{1000, 1500, 2000, 2600, 3100, 3100, 3700}, 1, kindInt},
		{"counter past 2^53", []float64{big, big + 8e12, big + 16e12, big + 24.5e12}, 1, kindInt},
		{"counter with gaps", []float64{absent, 10, 20, absent, absent, 50, 60, absent}, 1, kindIntLate},
		{"counter with a gap", []float64{10, 20, absent, absent, 50, 60, absent}, 1, kindInt},
		{"reset", []float64{5e12, 6e12, 100, 200}, 1, kindInt},
		{"percent as ratio", scaledAll(0.01, 43.21, 50.12, 39.99, 1, 0, absent), 0.01, kindInt},
		{"microseconds as seconds", scaledAll(1e-6, 2.5, 3.125, 10, 0.001), 1e-6, kindInt},
		{"temperature", []float64{45.123, 45.401, 44.999, -3.5, 0.001}, 1, kindInt},
		{"more decimals later", []float64{45, 45.5, 45.25, 45.125}, 1, kindInt},
		{"negative zero", []float64{1, math.Copysign(0, -1), 2}, 1, kindXOR},
		{"NaN among values", []float64{1, math.NaN(), 2, absent}, 1, kindXOR},
		{"not a short decimal", []float64{math.Pi, math.E, math.Sqrt2}, 1, kindXOR},
		{"huge", []float64{1e300, -1e300, 5}, 1, kindXOR},
		{"infinities", []float64{math.Inf(1), math.Inf(-1), 5}, 1, kindXOR},
		{"near the integer limit", []float64{kLimit - 1024, -(kLimit - 1024), kLimit - 1024}, 1, kindInt},
		{"past the integer limit", []float64{kLimit, 0}, 1, kindXOR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if kind := checkRoundTrip(t, tc.cells, tc.scale); kind != tc.kind {
				t.Errorf("encoded as kind %d, want %d", kind, tc.kind)
			}
		})
	}
}

// A steady counter predicts best from the previous delta; a noisy gauge
// from the previous value.
func TestCodecPicksPrediction(t *testing.T) {
	counter := make([]float64, 60)
	gauge := make([]float64, 60)
	noise := uint64(1)
	for i := range counter {
		noise = noise*6364136223846793005 + 1442695040888963407
		counter[i] = 1e12 + float64(i)*123456789 + float64(i%3)
		gauge[i] = 40 + float64(noise>>54)/1000
	}
	if enc, _ := oneSeries(counter, 1); enc.series(0)[0]&dodFlag == 0 {
		t.Error("steady counter not encoded as delta of delta")
	}
	if enc, _ := oneSeries(gauge, 1); enc.series(0)[0]&dodFlag != 0 {
		t.Error("gauge encoded as delta of delta")
	}
	checkRoundTrip(t, counter, 1)
	checkRoundTrip(t, gauge, 1)
}

// FuzzCodec encodes arbitrary cells (absent, integers, short decimals, any
// bits) under each scale the schema uses and decodes them bit for bit.
func FuzzCodec(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, byte(0))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0x10, 0, 0, 0, 0, 0, 0, 1}, byte(2))
	f.Add([]byte{3, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0}, byte(1))
	scales := []float64{1, 0, 0.01, 1e-6, 4, 1e-3}
	f.Fuzz(func(t *testing.T, data []byte, scaleSel byte) {
		scale := scales[int(scaleSel)%len(scales)]
		var cells []float64
		for len(data) >= 9 && len(cells) < 300 {
			u := binary.LittleEndian.Uint64(data[1:9])
			switch data[0] % 5 {
			case 0:
				cells = append(cells, absent)
			case 1: // an integer counter
				cells = append(cells, fromDecimal(int64(u>>4), 0, scale))
			case 2: // a decimal with a few digits
				cells = append(cells, fromDecimal(int64(u>>20)-1<<43, int(data[0]/5)%(maxDigits+1), scale))
			case 3: // any bits but the absent marker
				if v := math.Float64frombits(u); !isAbsent(v) {
					cells = append(cells, v)
				}
			case 4: // the previous value again
				if n := len(cells); n > 0 {
					cells = append(cells, cells[n-1])
				}
			}
			data = data[9:]
		}
		if len(cells) == 0 {
			return
		}
		checkRoundTrip(t, cells, scale)
	})
}
