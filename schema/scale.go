package schema

import (
	"math"
	"strconv"
)

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

// maxExactInt is the largest integer below which every integer is a float64.
const maxExactInt = 1 << 53

// maxDecimals is the most decimals a source value is looked at with: the
// digits a float64 holds.
const maxDecimals = 15

// Scaled returns v in base units: v times scale. A scale of 1 or 0 (unset)
// returns v. A power of ten (1e-6 for microseconds, 0.01 for percent) moves
// the decimal point of v's shortest decimal form, so 0.87 µs is 8.7e-07 s
// and 36.139 % is 0.36139, the numbers a reader expects, where a float
// product gives 8.699999999999999e-07 for some inputs. Other scales (4 for
// 4-octet words) multiply. The same v and scale always give the same bits,
// which the history's codec relies on (ScaledDecimal).
func Scaled(v, scale float64) float64 {
	if scale == 1 || scale == 0 {
		return v
	}
	e, ok := pow10Exponent(scale)
	if !ok || v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v * scale
	}
	for d := 0; d <= maxDecimals; d++ {
		x := v * exactPow10[d]
		if !(math.Abs(x) < maxExactInt) {
			break
		}
		// v*10^d is rounded, so it need not be an integer even when v
		// is that decimal: the test is whether the integer reads back as v.
		if k := math.Round(x); k/exactPow10[d] == v {
			return shifted(k, e-d)
		}
	}
	return shiftedText(v, e)
}

// ScaledDecimal is Scaled(k / 10^d, scale) for an integer k, computed from
// k and d alone: the history's codec stores values as such integers.
func ScaledDecimal(k int64, d int, scale float64) float64 {
	v := float64(k)
	if d > 0 {
		v /= exactPow10[d]
	}
	if scale == 1 || scale == 0 {
		return v
	}
	e, ok := pow10Exponent(scale)
	if !ok || k == 0 || math.Abs(float64(k)) >= maxExactInt {
		return Scaled(v, scale)
	}
	return shifted(float64(k), e-d)
}

// shifted is the integer k times 10^e, correctly rounded: one exact
// operation on two exact operands when both fit, else decimal text.
func shifted(k float64, e int) float64 {
	switch {
	case e >= 0 && e < len(exactPow10) && math.Abs(k*exactPow10[e]) < maxExactInt:
		return k * exactPow10[e]
	case e < 0 && -e < len(exactPow10):
		return k / exactPow10[-e]
	}
	return shiftedText(k, e)
}

// shiftedText is v times 10^e by way of v's shortest decimal text: slow,
// exact, and rare (values or exponents past what float64 holds exactly).
func shiftedText(v float64, e int) float64 {
	var buf [48]byte
	b := strconv.AppendFloat(buf[:0], v, 'e', -1, 64)
	i := len(b) - 1
	for b[i] != 'e' {
		i--
	}
	exp, err := strconv.Atoi(string(b[i+1:]))
	if err != nil {
		return v * math.Pow10(e)
	}
	b = strconv.AppendInt(b[:i+1], int64(exp+e), 10)
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !math.IsInf(f, 0) {
		return v * math.Pow10(e)
	}
	return f
}

// pow10Exponent returns e if scale is exactly 10^e, for |e| up to 22.
func pow10Exponent(scale float64) (int, bool) {
	for e, p := range exactPow10 {
		switch scale {
		case p:
			return e, true
		case 1 / p:
			// 1/p is the float64 nearest 10^-e, as the literal 1e-e is.
			return -e, true
		}
	}
	return 0, false
}
