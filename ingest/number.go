package ingest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// The number grammar, one for every metric cell and timestamp (README,
// "CSV format"):
//
//	cell     = *blank [ number ] *blank   ; blank is a space or a tab
//	number   = [ sign ] digits [ "." digits ] [ exponent ]
//	         / "NaN" / [ sign ] ( "Inf" / "Infinity" )   ; letters in any case
//	exponent = ( "e" / "E" ) [ sign ] digits
//	sign     = "+" / "-"
//	digits   = 1*( "0" / "1" / ... / "9" )
//
// A cell with no number (empty, or blanks only) is absent. A number without
// a fraction or an exponent is an integer, kept exact, and must lie within
// -2^63 and 2^64-1; any other is the nearest float64, and must not be beyond
// ±MaxFloat64 (what rounds to ±Inf). Everything else is refused, with the
// cell in the message: hexadecimal (0x10), hexadecimal floats (0x1p4),
// underscores (1_000), ".5" and "5.", other white space. strconv alone
// would accept some of these and turn an overflow into ±Inf, so the syntax
// is checked here and strconv only computes the value.

// numberKind is what the grammar makes of a number's text.
type numberKind uint8

const (
	notNumber numberKind = iota
	integerNumber
	floatNumber
	specialNumber // NaN, ±Inf, ±Infinity
)

// numberSyntax classifies f, which has no surrounding blanks.
func numberSyntax(f []byte) numberKind {
	i := 0
	if i < len(f) && (f[i] == '+' || f[i] == '-') {
		i++
	}
	digits := func() int {
		start := i
		for i < len(f) && f[i]-'0' <= 9 {
			i++
		}
		return i - start
	}
	if digits() == 0 {
		word, signed := f[i:], i > 0
		if equalFoldASCII(word, "inf") || equalFoldASCII(word, "infinity") || !signed && equalFoldASCII(word, "nan") {
			return specialNumber
		}
		return notNumber
	}
	kind := integerNumber
	if i < len(f) && f[i] == '.' {
		i++
		if digits() == 0 {
			return notNumber
		}
		kind = floatNumber
	}
	if i < len(f) && (f[i] == 'e' || f[i] == 'E') {
		i++
		if i < len(f) && (f[i] == '+' || f[i] == '-') {
			i++
		}
		if digits() == 0 {
			return notNumber
		}
		kind = floatNumber
	}
	if i != len(f) {
		return notNumber
	}
	return kind
}

// equalFoldASCII reports whether s is lower in any letter case, ASCII only
// (Unicode folding would let the Kelvin sign stand for a k).
func equalFoldASCII(s []byte, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// trimBlanks removes the spaces and tabs around a cell.
func trimBlanks(f []byte) []byte {
	for len(f) > 0 && (f[0] == ' ' || f[0] == '\t') {
		f = f[1:]
	}
	for len(f) > 0 && (f[len(f)-1] == ' ' || f[len(f)-1] == '\t') {
		f = f[:len(f)-1]
	}
	return f
}

// parseValue reads one metric cell by the grammar: the decimal fast path,
// else the syntax check and strconv. An empty cell is an absent value.
func parseValue(f []byte) (snapshot.Value, error) {
	if len(f) == 0 {
		return snapshot.Value{}, nil
	}
	if v, end, ok := scanDecimal(f, 0); ok && end == len(f) {
		return v, nil
	}
	f = trimBlanks(f)
	if len(f) == 0 {
		return snapshot.Value{}, nil
	}
	s := unsafe.String(unsafe.SliceData(f), len(f)) // not retained
	switch numberSyntax(f) {
	case integerNumber:
		if s[0] == '-' {
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return snapshot.Value{}, fmt.Errorf("integer %q is below -2^63", truncate(f))
			}
			return snapshot.IntValue(i), nil
		}
		u, err := strconv.ParseUint(strings.TrimPrefix(s, "+"), 10, 64)
		if err != nil {
			return snapshot.Value{}, fmt.Errorf("integer %q is beyond 2^64-1", truncate(f))
		}
		return snapshot.UintValue(u), nil
	case floatNumber, specialNumber:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			// The syntax is checked: only an overflow is left.
			return snapshot.Value{}, fmt.Errorf("%q is beyond ±MaxFloat64", truncate(f))
		}
		return snapshot.FloatValue(x), nil
	}
	return snapshot.Value{}, fmt.Errorf("%q is not a number", truncate(f))
}

// pow10 holds the powers of ten that are exact in a float64.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// scanDecimal reads a field of the form [-]digits[.digits] starting at pos
// and ending at a comma or the end of the line: the numbers UFM and the
// simulator write. Integers of up to 19 digits are exact; a fraction with
// up to 15 significant digits is one correctly rounded division, the fast
// path strconv itself takes, so the float is the same. ok is false for
// anything else (the caller falls back to parseValue); end is then
// meaningless.
func scanDecimal(line []byte, pos int) (v snapshot.Value, end int, ok bool) {
	neg := pos < len(line) && line[pos] == '-'
	if neg {
		pos++
	}
	start := pos
	var mant uint64
	for ; pos < len(line) && line[pos]-'0' <= 9; pos++ {
		mant = mant*10 + uint64(line[pos]-'0')
	}
	intDigits := pos - start
	if intDigits == 0 {
		return v, pos, false
	}
	if pos == len(line) || line[pos] == ',' {
		switch {
		case intDigits > 19:
			return v, pos, false
		case !neg:
			return snapshot.UintValue(mant), pos, true
		case intDigits <= 18:
			return snapshot.IntValue(-int64(mant)), pos, true
		}
		return v, pos, false
	}
	if line[pos] != '.' {
		return v, pos, false
	}
	pos++
	fracStart := pos
	for ; pos < len(line) && line[pos]-'0' <= 9; pos++ {
		mant = mant*10 + uint64(line[pos]-'0')
	}
	frac := pos - fracStart
	if pos < len(line) && line[pos] != ',' || frac == 0 || intDigits+frac > 15 {
		return v, pos, false
	}
	x := float64(mant) / pow10[frac]
	if neg {
		x = -x
	}
	return snapshot.FloatValue(x), pos, true
}

// timestamp is a source timestamp normalised to Unix nanoseconds.
type timestamp int64

func (t timestamp) time() time.Time { return time.Unix(0, int64(t)).UTC() }

// timestampBands tell a timestamp's unit from its magnitude. Each band
// starts at 2001-09-09T01:46:40Z (10, 13, 16 or 19 digits) and ends where
// nanoseconds leave int64, 2262-04-11T23:47:16.854775807Z, so every
// accepted value is a date of those years in its unit, and a value between
// two bands (11, 12, 14, 15, 17 or 18 digits, or a 10-digit second beyond
// 2262) is refused rather than read in a unit picked by a guess.
var timestampBands = [...]struct{ from, nanos int64 }{
	{1e9, 1e9},  // seconds
	{1e12, 1e6}, // milliseconds
	{1e15, 1e3}, // microseconds
	{1e18, 1},   // nanoseconds
}

var errTimestampBand = errors.New("is not a Unix time in seconds, milliseconds, microseconds or nanoseconds " +
	"(10, 13, 16 or 19 digits) between 2001-09-09 and 2262-04-11")

// parseTimestamp reads a Unix timestamp by the number grammar (NaN and Inf
// excepted) and the bands. Integers stay exact; a fractional value is read
// as a float. An empty cell means none.
func parseTimestamp(f []byte) (timestamp, error) {
	f = trimBlanks(f)
	if len(f) == 0 {
		return 0, nil
	}
	s := unsafe.String(unsafe.SliceData(f), len(f)) // not retained
	switch numberSyntax(f) {
	case integerNumber:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			for i := len(timestampBands) - 1; i >= 0; i-- {
				if b := timestampBands[i]; n >= b.from {
					if n > math.MaxInt64/b.nanos {
						break
					}
					return timestamp(n * b.nanos), nil
				}
			}
		}
	case floatNumber:
		if x, err := strconv.ParseFloat(s, 64); err == nil {
			for i := len(timestampBands) - 1; i >= 0; i-- {
				if b := timestampBands[i]; x >= float64(b.from) {
					if ns := x * float64(b.nanos); ns < math.MaxInt64 { // 2^63 as a float64
						return timestamp(ns), nil
					}
					break
				}
			}
		}
	}
	return 0, fmt.Errorf("timestamp %q %w", truncate(f), errTimestampBand)
}
