package snapshot

import (
	"math"
	"strconv"
)

// Kind says how a Value's bits are to be read.
type Kind uint8

const (
	// Absent marks a cell the source left empty: the counter is not reported,
	// which is neither a zero nor an error.
	Absent Kind = iota
	// Uint is an exact unsigned integer (64-bit switch counters).
	Uint
	// Int is an exact negative integer.
	Int
	// Float is an IEEE 754 double, NaN and ±Inf included.
	Float
)

// Value is one cell of a snapshot. Integers are kept exact to 2^64-1, since
// 64-bit counters pass 2^53 within hours on a busy switch and a float64 would
// silently round them.
type Value struct {
	bits uint64
	kind Kind
}

// UintValue returns an exact unsigned integer value.
func UintValue(u uint64) Value { return Value{bits: u, kind: Uint} }

// IntValue returns an exact integer value.
func IntValue(i int64) Value {
	if i >= 0 {
		return UintValue(uint64(i))
	}
	return Value{bits: uint64(i), kind: Int}
}

// FloatValue returns a floating-point value.
func FloatValue(f float64) Value { return Value{bits: math.Float64bits(f), kind: Float} }

// Kind reports how the value is stored.
func (v Value) Kind() Kind { return v.kind }

// Present reports whether the source gave a value.
func (v Value) Present() bool { return v.kind != Absent }

// Float64 returns the value as a float64 (NaN when absent).
func (v Value) Float64() float64 {
	switch v.kind {
	case Uint:
		return float64(v.bits)
	case Int:
		return float64(int64(v.bits))
	case Float:
		return math.Float64frombits(v.bits)
	}
	return math.NaN()
}

// Uint64 returns the exact value of a Uint (ok false for other kinds).
func (v Value) Uint64() (u uint64, ok bool) { return v.bits, v.kind == Uint }

// Int64 returns the exact value of an Int, which is always negative (ok
// false for other kinds: a non-negative integer is a Uint).
func (v Value) Int64() (i int64, ok bool) { return int64(v.bits), v.kind == Int }

// AppendJSON appends the value as a JSON number, exact for integers; values
// JSON cannot hold (absent, NaN, ±Inf) become null.
func (v Value) AppendJSON(b []byte) []byte {
	switch v.kind {
	case Uint:
		return strconv.AppendUint(b, v.bits, 10)
	case Int:
		return strconv.AppendInt(b, int64(v.bits), 10)
	case Float:
		f := math.Float64frombits(v.bits)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return append(b, "null"...)
		}
		return appendJSONFloat(b, f)
	}
	return append(b, "null"...)
}

// AppendText appends the value as the Prometheus text format writes it:
// exact digits for integers, Go's shortest float form, NaN, +Inf, -Inf.
func (v Value) AppendText(b []byte) []byte {
	switch v.kind {
	case Uint:
		return strconv.AppendUint(b, v.bits, 10)
	case Int:
		return strconv.AppendInt(b, int64(v.bits), 10)
	}
	f := v.Float64()
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendJSONFloat formats f the way encoding/json does, so a client sees the
// same digits whichever encoder wrote them.
func appendJSONFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9, as encoding/json does.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
