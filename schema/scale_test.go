package schema

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

// A power-of-ten scale moves the decimal point: the answer is the float64
// nearest the exact decimal product (strconv's reading of the shifted
// text), not a float product that is one ulp off for about a third of
// inputs.
func TestScaledPowersOfTen(t *testing.T) {
	for _, tc := range []struct {
		v, scale float64
		want     string
	}{
		{0.87, 1e-6, "8.7e-07"},
		{36.139, 0.01, "0.36139"},
		{1.416, 1e-6, "1.416e-06"},
		{2.867, 1e-6, "2.867e-06"},
		{59.567, 0.01, "0.59567"},
		{1234, 1e-6, "0.001234"},
		{0.5, 1e3, "500"},
		{0.87, 1e3, "870"},
		{12.5, 4, "50"},
		{7, 1, "7"},
		{7, 0, "7"},
		{0, 1e-6, "0"},
		{-0.87, 1e-6, "-8.7e-07"},
		{math.Inf(1), 1e-6, "+Inf"},
		{1e300, 1e-6, "1e+294"},
		{9007199254740993, 0.01, "9.007199254740992e+13"},
	} {
		got := strconv.FormatFloat(Scaled(tc.v, tc.scale), 'g', -1, 64)
		if got != tc.want {
			t.Errorf("Scaled(%v, %v) = %s, want %s", tc.v, tc.scale, got, tc.want)
		}
	}
	if !math.IsNaN(Scaled(math.NaN(), 0.01)) {
		t.Error("NaN scaled is not NaN")
	}
}

// Random decimals as sources write them (up to 6 integer digits and 4
// decimals), against strconv reading the decimal text with its exponent
// shifted.
func TestScaledMatchesDecimalText(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		d := r.IntN(5)
		text := strconv.FormatFloat(float64(r.Int64N(1e10))/math.Pow10(d), 'f', d, 64)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []int{-9, -6, -3, -2, -1, 2, 3} {
			want, err := strconv.ParseFloat(text+"e"+strconv.Itoa(e), 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := Scaled(v, math.Pow10(e)); got != want {
				t.Fatalf("Scaled(%s, 1e%d) = %v, want %v", text, e, got, want)
			}
		}
	}
}

// The codec's form, an integer and its decimals, gives the same bits as the
// value's, for the values a float64 holds as decimals (15 digits).
func TestScaledDecimalSameBits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200_000 {
		k := r.Int64N(2e15) - 1e15
		d := r.IntN(10)
		v := float64(k) / math.Pow10(d)
		for _, scale := range []float64{1e-6, 0.01, 1e3, 4, 1, 0.25} {
			if a, b := Scaled(v, scale), ScaledDecimal(k, d, scale); math.Float64bits(a) != math.Float64bits(b) {
				t.Fatalf("k=%d d=%d scale %v: Scaled %v, ScaledDecimal %v", k, d, scale, a, b)
			}
		}
	}
}

func BenchmarkScaled(b *testing.B) {
	v := 36.139
	for b.Loop() {
		v = Scaled(v, 0.01)
		v = Scaled(v, 100)
	}
}
