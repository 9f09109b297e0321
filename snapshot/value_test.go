package snapshot

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestValueKinds(t *testing.T) {
	tests := []struct {
		name     string
		v        Value
		kind     Kind
		present  bool
		float    float64 // NaN means "expect NaN"
		uint     uint64
		uintOK   bool
		wantJSON string
		wantText string
	}{
		{"zero value is absent", Value{}, Absent, false, math.NaN(), 0, false, "null", "NaN"},
		{"uint max", UintValue(math.MaxUint64), Uint, true, math.MaxUint64, math.MaxUint64, true, "18446744073709551615", "18446744073709551615"},
		{"uint past 2^53", UintValue(1<<53 + 1), Uint, true, 1 << 53, 1<<53 + 1, true, "9007199254740993", "9007199254740993"},
		{"uint zero", UintValue(0), Uint, true, 0, 0, true, "0", "0"},
		{"non-negative int is a uint", IntValue(42), Uint, true, 42, 42, true, "42", "42"},
		{"negative int", IntValue(-7), Int, true, -7, 0, false, "-7", "-7"},
		{"min int64", IntValue(math.MinInt64), Int, true, math.MinInt64, 0, false, "-9223372036854775808", "-9223372036854775808"},
		{"float", FloatValue(1.25), Float, true, 1.25, 0, false, "1.25", "1.25"},
		{"negative float", FloatValue(-0.5), Float, true, -0.5, 0, false, "-0.5", "-0.5"},
		{"integral float stays a float in text", FloatValue(3), Float, true, 3, 0, false, "3", "3"},
		{"NaN", FloatValue(math.NaN()), Float, true, math.NaN(), 0, false, "null", "NaN"},
		{"+Inf", FloatValue(math.Inf(1)), Float, true, math.Inf(1), 0, false, "null", "+Inf"},
		{"-Inf", FloatValue(math.Inf(-1)), Float, true, math.Inf(-1), 0, false, "null", "-Inf"},
		{"large float", FloatValue(1e21), Float, true, 1e21, 0, false, "1e+21", "1e+21"},
		{"small float", FloatValue(1e-7), Float, true, 1e-7, 0, false, "1e-7", "1e-07"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.Kind(); got != tt.kind {
				t.Errorf("Kind() = %v, want %v", got, tt.kind)
			}
			if got := tt.v.Present(); got != tt.present {
				t.Errorf("Present() = %v, want %v", got, tt.present)
			}
			got := tt.v.Float64()
			if math.IsNaN(tt.float) != math.IsNaN(got) || !math.IsNaN(got) && got != tt.float {
				t.Errorf("Float64() = %v, want %v", got, tt.float)
			}
			if u, ok := tt.v.Uint64(); ok != tt.uintOK || ok && u != tt.uint {
				t.Errorf("Uint64() = %d, %v, want %d, %v", u, ok, tt.uint, tt.uintOK)
			}
			if got := string(tt.v.AppendJSON([]byte("x"))); got != "x"+tt.wantJSON {
				t.Errorf("AppendJSON = %q, want %q", got, "x"+tt.wantJSON)
			}
			if !json.Valid(tt.v.AppendJSON(nil)) {
				t.Errorf("AppendJSON output %q is not valid JSON", tt.v.AppendJSON(nil))
			}
			if got := string(tt.v.AppendText([]byte("x"))); got != "x"+tt.wantText {
				t.Errorf("AppendText = %q, want %q", got, "x"+tt.wantText)
			}
		})
	}
}

// TestAppendJSONIntegersExact decodes AppendJSON's output with json.Number
// and compares digits: a float64 on the way would round above 2^53.
func TestAppendJSONIntegersExact(t *testing.T) {
	for _, u := range []uint64{0, 1, 1<<53 - 1, 1 << 53, 1<<53 + 1, 1<<63 + 12345, math.MaxUint64 - 1, math.MaxUint64} {
		want := strconv.FormatUint(u, 10)
		var n json.Number
		if err := json.Unmarshal(UintValue(u).AppendJSON(nil), &n); err != nil {
			t.Fatalf("%d: %v", u, err)
		}
		if string(n) != want {
			t.Errorf("UintValue(%s) → %s", want, n)
		}
	}
	for _, i := range []int64{-1, -(1 << 53) - 1, math.MinInt64 + 1, math.MinInt64} {
		want := strconv.FormatInt(i, 10)
		if got := string(IntValue(i).AppendJSON(nil)); got != want {
			t.Errorf("IntValue(%s) → %s", want, got)
		}
	}
}

// TestAppendJSONFloatMatchesEncodingJSON compares the hand-rolled float
// formatting with encoding/json's on edge cases and random bit patterns.
func TestAppendJSONFloatMatchesEncodingJSON(t *testing.T) {
	floats := []float64{
		0, math.Copysign(0, -1), 1, -1, 0.1, 1.0 / 3, 123456789.125, 2.5e-3,
		1e-6, 9.999999e-7, 1e-7, -1e-7, 1.5e-9, 1e-10, 1e-100, 5e-324, math.SmallestNonzeroFloat64,
		1e20, 9.99999e20, 1e21, -1e21, 1.5e21, 1e100, math.MaxFloat64, -math.MaxFloat64,
		1 << 53, 1<<53 + 2, 18446744073709551615,
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		floats = append(floats, f)
	}
	for range 2000 {
		floats = append(floats, r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)))
	}
	for _, f := range floats {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := FloatValue(f).AppendJSON(nil); string(got) != string(want) {
			t.Errorf("AppendJSON(%b) = %s, encoding/json writes %s", f, got, want)
		}
	}
}

// TestInt64Exact checks that Int64 gives negative integers back to the
// last bit, which Float64 cannot below -2^53, and refuses other kinds.
func TestInt64Exact(t *testing.T) {
	for _, i := range []int64{-1, -(1<<53 + 1), math.MinInt64} {
		if got, ok := IntValue(i).Int64(); !ok || got != i {
			t.Errorf("IntValue(%d).Int64() = %d, %v", i, got, ok)
		}
	}
	for _, v := range []Value{{}, UintValue(7), IntValue(7), FloatValue(-1)} {
		if _, ok := v.Int64(); ok {
			t.Errorf("%v.Int64() ok for kind %v", v, v.Kind())
		}
	}
}
