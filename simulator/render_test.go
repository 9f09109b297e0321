package simulator

import (
	"math"
	"strconv"
	"testing"
)

func TestAppendGauge(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{0.5, "0.5"},
		{1.2345, "1.235"},
		{99.9999, "100"},
		{45.0104, "45.01"},
		{-3.25, "-3.25"},
		{600.001, "600.001"},
	}
	for _, tc := range tests {
		if got := string(appendGauge(nil, tc.in)); got != tc.want {
			t.Errorf("appendGauge(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Agree with strconv over the whole range the gauges use.
	for i := range 200_000 {
		v := float64(i)*0.00731 - 10
		want := strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
		if want == "-0" {
			want = "0"
		}
		if got := string(appendGauge(nil, v)); got != want {
			t.Fatalf("appendGauge(%v) = %q, strconv gives %q", v, got, want)
		}
	}
}
