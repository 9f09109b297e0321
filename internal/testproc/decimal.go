package testproc

import (
	"strconv"
	"strings"
	"testing"
)

// Scaled is what a source's decimal text should be exported as under a
// schema scale, computed apart from the code under test: for a power of
// ten, strconv's reading of the text with its exponent shifted (0.87 µs is
// 8.7e-07 s); for any other scale, the float product.
func Scaled(t testing.TB, text string, scale float64) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(text, 64)
	if err != nil {
		t.Fatalf("source value %q: %v", text, err)
	}
	mantissa, exp, _ := strings.Cut(strconv.FormatFloat(scale, 'e', -1, 64), "e")
	if mantissa != "1" || scale == 1 {
		return v * scale
	}
	shifted, err := strconv.ParseFloat(text+"e"+exp, 64)
	if err != nil {
		t.Fatalf("source value %q shifted by e%s: %v", text, exp, err)
	}
	return shifted
}
