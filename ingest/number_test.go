package ingest

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fabrictelemetry/aggregator/snapshot"
)

// numberRE is the number grammar of README's "CSV format", written as a
// regular expression: the oracle the parser is checked against.
var numberRE = regexp.MustCompile(`^[ \t]*(?:` +
	`(?P<int>[+-]?[0-9]+)` +
	`|(?P<float>[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)` +
	`|(?P<special>(?i:nan)|[+-]?(?i:inf|infinity))` +
	`)?[ \t]*$`)

// numberOracle reads a cell by the grammar without the parser's code: the
// value the parser must give, and whether the cell is to be accepted.
// Integers are checked against their range with math/big.
func numberOracle(cell string) (snapshot.Value, bool) {
	m := numberRE.FindStringSubmatch(cell)
	if m == nil {
		return snapshot.Value{}, false
	}
	switch {
	case m[1] != "":
		n, ok := new(big.Int).SetString(strings.TrimPrefix(m[1], "+"), 10)
		switch {
		case !ok:
			return snapshot.Value{}, false
		case n.Sign() >= 0 && n.IsUint64():
			return snapshot.UintValue(n.Uint64()), true
		case n.Sign() < 0 && n.IsInt64():
			return snapshot.IntValue(n.Int64()), true
		}
		return snapshot.Value{}, false
	case m[2] != "", m[3] != "":
		x, err := strconv.ParseFloat(m[2]+m[3], 64)
		if err != nil {
			return snapshot.Value{}, false // beyond ±MaxFloat64
		}
		return snapshot.FloatValue(x), true
	}
	return snapshot.Value{}, true // no number: absent
}

func describe(v snapshot.Value) string {
	kinds := map[snapshot.Kind]string{snapshot.Absent: "absent", snapshot.Uint: "uint", snapshot.Int: "int", snapshot.Float: "float"}
	if !v.Present() {
		return "absent"
	}
	return fmt.Sprintf("%s %s", kinds[v.Kind()], v.AppendText(nil))
}

// TestParseNumberGrammar reads each case as a cell of a body, plain and
// quoted (the byte scanner and encoding/csv paths), and checks the value or
// the rejection, whose message must name the column and the line.
func TestParseNumberGrammar(t *testing.T) {
	accepted := []struct {
		cell string
		want snapshot.Value
	}{
		{"0", snapshot.UintValue(0)},
		{"42", snapshot.UintValue(42)},
		{"-7", snapshot.IntValue(-7)},
		{"+7", snapshot.UintValue(7)},
		{"-0", snapshot.UintValue(0)},
		{"007", snapshot.UintValue(7)},
		{"00000000000000000000001", snapshot.UintValue(1)},
		{"18446744073709551615", snapshot.UintValue(math.MaxUint64)},
		{"+18446744073709551615", snapshot.UintValue(math.MaxUint64)},
		{"9007199254740993", snapshot.UintValue(1<<53 + 1)},
		{"-9223372036854775808", snapshot.IntValue(math.MinInt64)},
		{"1.5", snapshot.FloatValue(1.5)},
		{"-1.5", snapshot.FloatValue(-1.5)},
		{"0.1", snapshot.FloatValue(0.1)},
		{"1e3", snapshot.FloatValue(1000)},
		{"1E3", snapshot.FloatValue(1000)},
		{"+1.5E+3", snapshot.FloatValue(1500)},
		{"1.5e-3", snapshot.FloatValue(1.5e-3)},
		{"18446744073709551616.0", snapshot.FloatValue(1 << 64)}, // a float, printed as one
		{"1.7976931348623157e308", snapshot.FloatValue(math.MaxFloat64)},
		{"-1.7976931348623157e308", snapshot.FloatValue(-math.MaxFloat64)},
		{"1e-400", snapshot.FloatValue(0)}, // rounds to zero, as any float
		{"NaN", snapshot.FloatValue(math.NaN())},
		{"nan", snapshot.FloatValue(math.NaN())},
		{"Inf", snapshot.FloatValue(math.Inf(1))},
		{"+Inf", snapshot.FloatValue(math.Inf(1))},
		{"-Inf", snapshot.FloatValue(math.Inf(-1))},
		{"inf", snapshot.FloatValue(math.Inf(1))},
		{"Infinity", snapshot.FloatValue(math.Inf(1))},
		{"-INFINITY", snapshot.FloatValue(math.Inf(-1))},
		{" 5 ", snapshot.UintValue(5)},
		{"\t-2.5\t", snapshot.FloatValue(-2.5)},
		{"", snapshot.Value{}},
		{"  ", snapshot.Value{}},
	}
	rejected := []struct{ cell, message string }{
		{"0x10", "is not a number"},
		{"0x1p4", "is not a number"},
		{"0X1P4", "is not a number"},
		{"1_000", "is not a number"},
		{"0x1_0p0", "is not a number"},
		{"0b101", "is not a number"},
		{".5", "is not a number"},
		{"5.", "is not a number"},
		{"-.5", "is not a number"},
		{"-", "is not a number"},
		{"+", "is not a number"},
		{"1e", "is not a number"},
		{"1e+", "is not a number"},
		{"--1", "is not a number"},
		{"1.2.3", "is not a number"},
		{"1 000", "is not a number"},
		{"12x", "is not a number"},
		{"+NaN", "is not a number"},
		{"-nan", "is not a number"},
		{"infinit", "is not a number"},
		{"ınf", "is not a number"}, // dotless i: no Unicode case folding
		{"\u00a05", "is not a number"},
		{"5\r", "is not a number"},
		{"١", "is not a number"}, // Arabic-Indic one
		{"18446744073709551616", "beyond 2^64-1"},
		{"99999999999999999999", "beyond 2^64-1"},
		{"+18446744073709551616", "beyond 2^64-1"},
		{"-9223372036854775809", "below -2^63"},
		{"1e400", "beyond ±MaxFloat64"},
		{"-1e400", "beyond ±MaxFloat64"},
		{"1.8e308", "beyond ±MaxFloat64"},
		{"1e99999999999999999999", "beyond ±MaxFloat64"},
	}
	// The cell is not the last of its line, whose \r a CRLF body ends with.
	const header = "switch_id,Temperature_C,Rx_Bytes\nSW-00,1,2\n"
	bodies := map[string]func(cell string) string{
		"plain":  func(cell string) string { return header + "SW-01," + cell + ",1\n" },
		"quoted": func(cell string) string { return header + "\"SW-\"\"01\",\"" + cell + "\",1\n" },
	}
	for kind, body := range bodies {
		for _, tc := range accepted {
			t.Run(kind+"/"+tc.cell, func(t *testing.T) {
				snap, err := parse(t, body(tc.cell))
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if got := cellOf(t, snap); got != tc.want {
					t.Errorf("%q read as %s, want %s", tc.cell, describe(got), describe(tc.want))
				}
				if oracle, ok := numberOracle(tc.cell); !ok || oracle != tc.want {
					t.Errorf("the oracle reads %q as %s (accepted %v): the oracle is wrong", tc.cell, describe(oracle), ok)
				}
			})
		}
		for _, tc := range rejected {
			t.Run(kind+"/"+tc.cell, func(t *testing.T) {
				snap, err := parse(t, body(tc.cell))
				if err == nil {
					t.Fatalf("accepted %q as %s", tc.cell, describe(cellOf(t, snap)))
				}
				if ReasonOf(err) != ReasonParse {
					t.Errorf("reason %s, want parse", ReasonOf(err))
				}
				for _, want := range []string{"line 3", `column "Temperature_C"`, tc.message} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if _, ok := numberOracle(tc.cell); ok {
					t.Errorf("the oracle accepts %q: the oracle is wrong", tc.cell)
				}
			})
		}
	}
}

// cellOf is the cell under test in TestParseNumberGrammar: the
// Temperature_C of the row that is not SW-00.
func cellOf(t *testing.T, snap *snapshot.Snapshot) snapshot.Value {
	t.Helper()
	row := 0
	if snap.RowLabels(0)[0] == "SW-00" {
		row = 1
	}
	col, _ := snap.Column("Temperature_C")
	return snap.Value(row, col)
}

// FuzzParseValue checks parseValue against the grammar's oracle both ways:
// a cell is accepted exactly when the oracle accepts it, with its value.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"0", "-7", "+7", "1.5", "1e3", "NaN", "-Inf", "Infinity", " 5 ", "",
		"18446744073709551615", "18446744073709551616", "-9223372036854775809", "1e400", "1e-400",
		"0x10", "0x1p4", "1_000", ".5", "5.", "1e", "+NaN", "123456789012345.5", "1234567890123456.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cell string) {
		got, err := parseValue([]byte(cell))
		want, ok := numberOracle(cell)
		switch {
		case ok && err != nil:
			t.Fatalf("%q rejected (%v); the grammar reads it as %s", cell, err, describe(want))
		case !ok && err == nil:
			t.Fatalf("%q accepted as %s; the grammar refuses it", cell, describe(got))
		case ok && got != want:
			t.Fatalf("%q read as %s; the grammar reads %s", cell, describe(got), describe(want))
		}
	})
}

// TestParseTimestampBands checks the edges of every unit's band and the
// values between bands, which no unit reads as a date of 2001 to 2262.
func TestParseTimestampBands(t *testing.T) {
	first := time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)
	last := time.Unix(0, math.MaxInt64).UTC() // 2262-04-11T23:47:16.854775807Z
	tests := []struct {
		ts   string
		want time.Time // zero: rejected
	}{
		{"999999999", time.Time{}}, // 9 digits: 1970-2001 in seconds
		{"1000000000", first},      // seconds from 2001-09-09
		{"1764099000", time.Unix(1764099000, 0)},
		{"9223372036", last.Truncate(time.Second)}, // the last second in int64 nanoseconds
		{"9223372037", time.Time{}},                // seconds past 2262
		{"9999999999", time.Time{}},                // 2286: a date, but not in nanoseconds
		{"10000000000", time.Time{}},               // 11 digits
		{"999999999999", time.Time{}},              // 12 digits
		{"1000000000000", first},                   // milliseconds
		{"1764099000123", time.UnixMilli(1764099000123)},
		{"9223372036854", last.Truncate(time.Millisecond)},
		{"9223372036855", time.Time{}},
		{"10000000000000", time.Time{}},  // 14 digits
		{"999999999999999", time.Time{}}, // 15 digits
		{"1000000000000000", first},      // microseconds
		{"1764099000123456", time.UnixMicro(1764099000123456)},
		{"9223372036854775", last.Truncate(time.Microsecond)},
		{"9223372036854776", time.Time{}},
		{"10000000000000000", time.Time{}},  // 17 digits: was 2286 in µs
		{"17640990001234567", time.Time{}},  // 17 digits
		{"99999999999999999", time.Time{}},  // 17 digits
		{"100000000000000000", time.Time{}}, // 18 digits: was 1973 in ns
		{"176409900012345678", time.Time{}}, // 18 digits
		{"1000000000000000000", first},      // nanoseconds
		{"1764099000123456789", time.Unix(0, 1764099000123456789)},
		{"9223372036854775807", last},
		{"9223372036854775808", time.Time{}},
		{"18446744073709551615", time.Time{}},
		{"1764099000.5", time.Unix(1764099000, 5e8)},
		{"1.7640990005e9", time.Unix(1764099000, 5e8)},
		{"1764099000123.5", time.UnixMicro(1764099000123500)},
		{"9.223372036854775807e18", time.Time{}}, // 2^63 as a float
		{"5e10", time.Time{}},
		{" 1764099000 ", time.Unix(1764099000, 0)},
		{"+1764099000", time.Unix(1764099000, 0)},
		{"0", time.Time{}},
		{"-1764099000", time.Time{}},
		{"NaN", time.Time{}},
		{"Inf", time.Time{}},
		{"0x1p40", time.Time{}},
		{"1_764_099_000", time.Time{}},
		{"yesterday", time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.ts, func(t *testing.T) {
			snap, err := parse(t, "switch_id,timestamp,Rx_Bytes\nSW-01,"+tc.ts+",1\n")
			if tc.want.IsZero() {
				if err == nil {
					t.Fatalf("accepted as %v", snap.Time())
				}
				if ReasonOf(err) != ReasonParse || !strings.Contains(err.Error(), "line 2") ||
					!strings.Contains(err.Error(), `column "timestamp"`) || !strings.Contains(err.Error(), strings.TrimSpace(tc.ts)) {
					t.Errorf("error %v: want reason parse, naming the line, the column and the value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("rejected: %v", err)
			}
			// A fraction or an exponent makes a float: exact to a float64's
			// 256 ns at these dates.
			exact := !strings.ContainsAny(tc.ts, ".e")
			if d := snap.Time().Sub(tc.want); exact && d != 0 || d < -256 || d > 256 {
				t.Errorf("read as %v, want %v", snap.Time(), tc.want)
			}
		})
	}
}
